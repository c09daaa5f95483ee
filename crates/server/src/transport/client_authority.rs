//! Accepts etcdctl's `http://host:port` HTTP/2 authority on client
//! connections. etcdctl 3.4 dials its per-endpoint commands (`endpoint
//! status`, `endpoint hashkv`, `defrag`, and every `--cluster` form) with the
//! endpoint string as given, so `--endpoints=http://127.0.0.1:2379` sends
//! `:authority: http://127.0.0.1:2379`. That is not an authority; the `h2`
//! server under tonic resets such a stream (it has no setting to relax the
//! check), while etcd's Go server accepts it. [`AuthorityFix`] sits between
//! the socket and h2 and strips the scheme from such an authority.
//!
//! It rewrites only literal `:authority` fields of client header blocks and
//! keeps each field's HPACK representation, so h2's dynamic table holds the
//! same entries as the client's, some with shorter values: a later indexed
//! reference from the client finds the fixed value, and h2 never evicts an
//! entry the client still uses. Every other byte passes unchanged; frames
//! other than HEADERS and CONTINUATION stream through unbuffered. It never
//! interprets anything else and never touches what the server writes.

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const CLIENT_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_BYTES: usize = 9;
const FRAME_TYPE_HEADERS: u8 = 0x1;
const FRAME_TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
const PRIORITY_BYTES: usize = 5;
/// The frame payload every HTTP/2 server accepts (the initial
/// SETTINGS_MAX_FRAME_SIZE); rewritten blocks are cut into frames this size.
const FRAME_PAYLOAD_BYTES_MAX: usize = 16_384;
/// Largest header block (a HEADERS frame and its CONTINUATIONs) buffered.
const HEADER_BLOCK_BYTES_MAX: usize = 1 << 20;
/// `:authority` in HPACK's static table.
const AUTHORITY_STATIC_INDEX: u64 = 1;
const AUTHORITY_NAME: &[u8] = b":authority";
/// Bytes read from the socket per call.
const READ_CHUNK_BYTES: usize = 8192;

/// Why a client connection was closed instead of handed to h2.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityFixError {
    #[error("client HTTP/2 header block exceeds {HEADER_BLOCK_BYTES_MAX} bytes")]
    HeaderBlockTooLarge,
    #[error("malformed client HTTP/2 frame: {0}")]
    MalformedFrame(&'static str),
    #[error("malformed client HPACK header block at byte {offset}: {reason}")]
    MalformedHpack { offset: usize, reason: &'static str },
}

/// The HPACK Huffman code length of each symbol, 0..=255 and EOS (RFC 7541,
/// Appendix B). The code is canonical, so the lengths determine the codes.
const HUFFMAN_CODE_BITS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];
const HUFFMAN_EOS: u16 = 256;
const HUFFMAN_CODE_BITS_MAX: usize = 30;

/// The canonical Huffman code as decoding needs it: per length, the first
/// code and where its symbols start in `symbols` (sorted by length, then
/// symbol).
struct HuffmanTable {
    first_code: [u32; HUFFMAN_CODE_BITS_MAX + 1],
    first_position: [usize; HUFFMAN_CODE_BITS_MAX + 1],
    count: [u32; HUFFMAN_CODE_BITS_MAX + 1],
    symbols: Vec<u16>,
}

fn huffman_table() -> &'static HuffmanTable {
    static TABLE: OnceLock<HuffmanTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut count = [0u32; HUFFMAN_CODE_BITS_MAX + 1];
        for &bits in &HUFFMAN_CODE_BITS {
            count[usize::from(bits)] += 1;
        }
        let mut symbols: Vec<u16> = (0..=HUFFMAN_EOS).collect();
        symbols.sort_by_key(|&symbol| (HUFFMAN_CODE_BITS[usize::from(symbol)], symbol));
        let mut first_code = [0u32; HUFFMAN_CODE_BITS_MAX + 1];
        let mut first_position = [0usize; HUFFMAN_CODE_BITS_MAX + 1];
        let (mut code, mut position) = (0u32, 0usize);
        for bits in 1..=HUFFMAN_CODE_BITS_MAX {
            first_code[bits] = code;
            first_position[bits] = position;
            position += count[bits] as usize;
            code = (code + count[bits]) << 1;
        }
        debug_assert_eq!(position, symbols.len());
        HuffmanTable {
            first_code,
            first_position,
            count,
            symbols,
        }
    })
}

/// Decodes an HPACK Huffman string; `offset` locates it for errors.
fn huffman_decode(encoded: &[u8], offset: usize) -> Result<Vec<u8>, AuthorityFixError> {
    let table = huffman_table();
    let malformed = |reason| AuthorityFixError::MalformedHpack { offset, reason };
    let mut decoded = Vec::with_capacity(encoded.len() * 8 / 5);
    let (mut code, mut bits) = (0u32, 0usize);
    for byte in encoded {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            bits += 1;
            let index = code.wrapping_sub(table.first_code[bits]);
            if code >= table.first_code[bits] && index < table.count[bits] {
                let symbol = table.symbols[table.first_position[bits] + index as usize];
                let byte = u8::try_from(symbol).map_err(|_| malformed("EOS inside a string"))?;
                decoded.push(byte);
                (code, bits) = (0, 0);
            } else if bits == HUFFMAN_CODE_BITS_MAX {
                return Err(malformed("no Huffman code matches"));
            }
        }
    }
    // What is left must be padding: under 8 bits, all ones (a prefix of EOS).
    if bits >= 8 || code != (1u32 << bits) - 1 {
        return Err(malformed("Huffman padding is not a prefix of EOS"));
    }
    Ok(decoded)
}

/// Reads an HPACK integer with an `prefix_bits`-bit prefix at `*position`.
fn read_integer(
    block: &[u8],
    position: &mut usize,
    prefix_bits: u32,
) -> Result<u64, AuthorityFixError> {
    let malformed = |reason| AuthorityFixError::MalformedHpack {
        offset: *position,
        reason,
    };
    let mask = (1u64 << prefix_bits) - 1;
    let first = *block.get(*position).ok_or_else(|| malformed("truncated"))?;
    let mut value = u64::from(first) & mask;
    let mut cursor = *position + 1;
    if value == mask {
        let mut shift = 0;
        loop {
            let byte = *block
                .get(cursor)
                .ok_or_else(|| malformed("truncated integer"))?;
            cursor += 1;
            if shift > 56 {
                return Err(malformed("integer too large"));
            }
            value += u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    *position = cursor;
    Ok(value)
}

fn write_integer(out: &mut Vec<u8>, flags: u8, prefix_bits: u32, mut value: u64) {
    let mask = (1u64 << prefix_bits) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    value -= mask;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an HPACK string literal at `*position`, decoding Huffman.
fn read_string(block: &[u8], position: &mut usize) -> Result<Vec<u8>, AuthorityFixError> {
    let start = *position;
    let huffman = block.get(start).is_some_and(|first| first & 0x80 != 0);
    let length = read_integer(block, position, 7)?;
    let end = usize::try_from(length)
        .ok()
        .and_then(|length| position.checked_add(length))
        .filter(|&end| end <= block.len())
        .ok_or(AuthorityFixError::MalformedHpack {
            offset: start,
            reason: "string runs past the block",
        })?;
    let raw = &block[*position..end];
    *position = end;
    if huffman {
        huffman_decode(raw, start)
    } else {
        Ok(raw.to_vec())
    }
}

/// `host:port` from `http://host:port` or `https://host:port`.
fn strip_scheme(authority: &[u8]) -> Option<&[u8]> {
    authority
        .strip_prefix(b"http://")
        .or_else(|| authority.strip_prefix(b"https://"))
        .filter(|rest| !rest.is_empty())
}

/// The header block with every literal `:authority` that carries a scheme
/// rewritten without it; everything else byte for byte.
fn rewrite_header_block(block: &[u8]) -> Result<Vec<u8>, AuthorityFixError> {
    let mut out = Vec::with_capacity(block.len());
    let mut position = 0;
    while position < block.len() {
        let start = position;
        let first = block[position];
        if first & 0x80 != 0 {
            read_integer(block, &mut position, 7)?; // indexed field
            out.extend_from_slice(&block[start..position]);
            continue;
        }
        if first & 0xe0 == 0x20 {
            read_integer(block, &mut position, 5)?; // dynamic table size update
            out.extend_from_slice(&block[start..position]);
            continue;
        }
        // A literal: with incremental indexing (01), without (0000) or never
        // indexed (0001); the name is an index or, at 0, a string.
        let prefix_bits = if first & 0xc0 == 0x40 { 6 } else { 4 };
        let name_index = read_integer(block, &mut position, prefix_bits)?;
        let is_authority = if name_index == 0 {
            read_string(block, &mut position)? == AUTHORITY_NAME
        } else {
            name_index == AUTHORITY_STATIC_INDEX
        };
        let value_start = position;
        let value = read_string(block, &mut position)?;
        match strip_scheme(&value).filter(|_| is_authority) {
            Some(authority) => {
                out.extend_from_slice(&block[start..value_start]);
                write_integer(&mut out, 0, 7, authority.len() as u64);
                out.extend_from_slice(authority);
            }
            None => out.extend_from_slice(&block[start..position]),
        }
    }
    debug_assert!(out.len() <= block.len(), "a rewrite only shortens");
    Ok(out)
}

/// A header block being collected from a HEADERS frame and its CONTINUATIONs.
#[derive(Debug)]
struct PendingBlock {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_BYTES]>,
    fragments: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Checking the client preface; `matched` bytes of it seen.
    Preface { matched: usize },
    /// Not HTTP/2 with prior knowledge: every byte passes unchanged.
    Opaque,
    /// At a frame boundary.
    FrameHeader,
    /// Inside a frame that passes unchanged; `bytes_left` of its payload to go.
    PassThrough { bytes_left: usize },
}

/// The client-to-server byte stream rewriter, independent of any socket.
#[derive(Debug)]
struct Rewriter {
    state: State,
    pending: Vec<u8>,
    block: Option<PendingBlock>,
}

impl Rewriter {
    fn new() -> Rewriter {
        Rewriter {
            state: State::Preface { matched: 0 },
            pending: Vec::new(),
            block: None,
        }
    }

    /// Takes bytes from the client; appends what h2 should read to `out`.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), AuthorityFixError> {
        self.pending.extend_from_slice(input);
        while self.step(out)? {}
        Ok(())
    }

    /// The connection ended: whatever is buffered goes to h2 as it came.
    fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }

    /// One step of the state machine; false when it needs more input.
    fn step(&mut self, out: &mut Vec<u8>) -> Result<bool, AuthorityFixError> {
        match self.state {
            State::Preface { matched } => {
                let seen = self.pending.len().min(CLIENT_PREFACE.len());
                if self.pending[..seen] != CLIENT_PREFACE[..seen] {
                    self.state = State::Opaque;
                    return Ok(true);
                }
                if seen < CLIENT_PREFACE.len() {
                    debug_assert!(seen >= matched);
                    self.state = State::Preface { matched: seen };
                    return Ok(false);
                }
                out.extend(self.pending.drain(..CLIENT_PREFACE.len()));
                self.state = State::FrameHeader;
                Ok(true)
            }
            State::Opaque => {
                out.append(&mut self.pending);
                Ok(false)
            }
            State::PassThrough { bytes_left } => {
                let bytes = bytes_left.min(self.pending.len());
                out.extend(self.pending.drain(..bytes));
                self.state = match bytes_left - bytes {
                    0 => State::FrameHeader,
                    bytes_left => State::PassThrough { bytes_left },
                };
                Ok(!self.pending.is_empty())
            }
            State::FrameHeader => self.step_frame(out),
        }
    }

    fn step_frame(&mut self, out: &mut Vec<u8>) -> Result<bool, AuthorityFixError> {
        let Some(header) = self.pending.get(..FRAME_HEADER_BYTES) else {
            return Ok(false);
        };
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let frame_type = header[3];
        let continues_block = frame_type == FRAME_TYPE_CONTINUATION && self.block.is_some();
        if frame_type != FRAME_TYPE_HEADERS && !continues_block {
            if self.block.is_some() {
                return Err(AuthorityFixError::MalformedFrame(
                    "a frame other than CONTINUATION inside a header block",
                ));
            }
            out.extend(self.pending.drain(..FRAME_HEADER_BYTES));
            self.state = State::PassThrough { bytes_left: length };
            return Ok(true);
        }
        let collected = self.block.as_ref().map_or(0, |block| block.fragments.len());
        if collected + length > HEADER_BLOCK_BYTES_MAX {
            return Err(AuthorityFixError::HeaderBlockTooLarge);
        }
        if self.pending.len() < FRAME_HEADER_BYTES + length {
            return Ok(false);
        }
        let frame: Vec<u8> = self.pending.drain(..FRAME_HEADER_BYTES + length).collect();
        let flags = frame[4];
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER_BYTES..];
        if frame_type == FRAME_TYPE_HEADERS {
            self.start_block(stream_id, flags, payload)?;
        } else {
            let block = self.block.as_mut().expect("continues_block checked it");
            if block.stream_id != stream_id {
                return Err(AuthorityFixError::MalformedFrame(
                    "CONTINUATION on another stream than its HEADERS",
                ));
            }
            block.fragments.extend_from_slice(payload);
        }
        if flags & FLAG_END_HEADERS != 0 {
            let block = self
                .block
                .take()
                .expect("a block was just started or continued");
            write_block(&block, &rewrite_header_block(&block.fragments)?, out);
        }
        Ok(true)
    }

    fn start_block(
        &mut self,
        stream_id: u32,
        flags: u8,
        payload: &[u8],
    ) -> Result<(), AuthorityFixError> {
        if self.block.is_some() {
            return Err(AuthorityFixError::MalformedFrame(
                "HEADERS inside another header block",
            ));
        }
        let mut fragment = payload;
        if flags & FLAG_PADDED != 0 {
            let (&padding, rest) =
                fragment
                    .split_first()
                    .ok_or(AuthorityFixError::MalformedFrame(
                        "PADDED HEADERS without a pad length",
                    ))?;
            let kept = rest.len().checked_sub(usize::from(padding)).ok_or(
                AuthorityFixError::MalformedFrame("padding longer than the frame"),
            )?;
            fragment = &rest[..kept];
        }
        let mut priority = None;
        if flags & FLAG_PRIORITY != 0 {
            let (fields, rest) = fragment.split_first_chunk::<PRIORITY_BYTES>().ok_or(
                AuthorityFixError::MalformedFrame("PRIORITY HEADERS too short"),
            )?;
            priority = Some(*fields);
            fragment = rest;
        }
        self.block = Some(PendingBlock {
            stream_id,
            end_stream: flags & FLAG_END_STREAM != 0,
            priority,
            fragments: fragment.to_vec(),
        });
        Ok(())
    }
}

/// Writes a header block as one HEADERS frame (unpadded) and as many
/// CONTINUATIONs as the default frame size needs.
fn write_block(block: &PendingBlock, rewritten: &[u8], out: &mut Vec<u8>) {
    let priority_bytes = block.priority.map_or(0, |_| PRIORITY_BYTES);
    let first_bytes = rewritten
        .len()
        .min(FRAME_PAYLOAD_BYTES_MAX - priority_bytes);
    let (first, mut rest) = rewritten.split_at(first_bytes);
    let mut flags = if block.end_stream { FLAG_END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    write_frame_header(
        out,
        priority_bytes + first.len(),
        FRAME_TYPE_HEADERS,
        flags,
        block.stream_id,
    );
    if let Some(priority) = block.priority {
        out.extend_from_slice(&priority);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, remainder) = rest.split_at(rest.len().min(FRAME_PAYLOAD_BYTES_MAX));
        let flags = if remainder.is_empty() {
            FLAG_END_HEADERS
        } else {
            0
        };
        write_frame_header(
            out,
            chunk.len(),
            FRAME_TYPE_CONTINUATION,
            flags,
            block.stream_id,
        );
        out.extend_from_slice(chunk);
        rest = remainder;
    }
}

fn write_frame_header(out: &mut Vec<u8>, length: usize, frame_type: u8, flags: u8, stream_id: u32) {
    debug_assert!(length <= FRAME_PAYLOAD_BYTES_MAX);
    out.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
    out.push(frame_type);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

/// A client connection whose inbound bytes pass through the rewriter.
#[derive(Debug)]
pub struct AuthorityFix<S> {
    inner: S,
    rewriter: Rewriter,
    output: Vec<u8>,
    output_read: usize,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> AuthorityFix<S> {
        AuthorityFix {
            inner,
            rewriter: Rewriter::new(),
            output: Vec::new(),
            output_read: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let ready = &this.output[this.output_read..];
            if !ready.is_empty() {
                let bytes = ready.len().min(buf.remaining());
                buf.put_slice(&ready[..bytes]);
                this.output_read += bytes;
                if this.output_read == this.output.len() {
                    this.output.clear();
                    this.output_read = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK_BYTES];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(context, &mut chunk_buf))?;
            if chunk_buf.filled().is_empty() {
                this.rewriter.finish(&mut this.output);
                if this.output.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.rewriter
                .feed(chunk_buf.filled(), &mut this.output)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(context, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(context, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests;
