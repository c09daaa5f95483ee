use super::*;

/// Encodes with the same canonical code the decoder derives (tests only; the
/// RFC 7541 vectors below pin the code itself).
fn huffman_encode(text: &[u8]) -> Vec<u8> {
    let table = huffman_table();
    let mut codes = [0u32; 257];
    for bits in 1..=HUFFMAN_CODE_BITS_MAX {
        for offset in 0..table.count[bits] {
            let symbol = table.symbols[table.first_position[bits] + offset as usize];
            codes[usize::from(symbol)] = table.first_code[bits] + offset;
        }
    }
    let (mut pending, mut pending_bits, mut out) = (0u64, 0u32, Vec::new());
    for &byte in text {
        let bits = u32::from(HUFFMAN_CODE_BITS[usize::from(byte)]);
        pending = (pending << bits) | u64::from(codes[usize::from(byte)]);
        pending_bits += bits;
        while pending_bits >= 8 {
            pending_bits -= 8;
            out.push((pending >> pending_bits) as u8);
        }
        pending &= (1 << pending_bits) - 1;
    }
    if pending_bits > 0 {
        let padding_bits = 8 - pending_bits;
        out.push(((pending << padding_bits) | ((1 << padding_bits) - 1)) as u8);
    }
    out
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// A string literal, Huffman-coded or raw.
fn string(value: &[u8], huffman: bool) -> Vec<u8> {
    let (flag, bytes) = if huffman {
        (0x80, huffman_encode(value))
    } else {
        (0x00, value.to_vec())
    };
    let mut out = Vec::new();
    write_integer(&mut out, flag, 7, bytes.len() as u64);
    out.extend_from_slice(&bytes);
    out
}

/// A literal field with an indexed name: `kind` is 0x40 (incremental
/// indexing, 6-bit prefix), 0x00 (without indexing) or 0x10 (never indexed).
fn literal(kind: u8, name_index: u64, value: &[u8], huffman: bool) -> Vec<u8> {
    let prefix_bits = if kind == 0x40 { 6 } else { 4 };
    let mut out = Vec::new();
    write_integer(&mut out, kind, prefix_bits, name_index);
    out.extend(string(value, huffman));
    out
}

fn frame(frame_type: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame_header(&mut out, payload.len(), frame_type, flags, stream_id);
    out.extend_from_slice(payload);
    out
}

/// Feeds `input` one byte at a time, the hardest split for the state machine.
fn rewrite_stream(input: &[u8]) -> Result<Vec<u8>, AuthorityFixError> {
    let mut rewriter = Rewriter::new();
    let mut out = Vec::new();
    for byte in input {
        rewriter.feed(std::slice::from_ref(byte), &mut out)?;
    }
    rewriter.finish(&mut out);
    Ok(out)
}

#[test]
fn huffman_decodes_the_rfc_7541_examples() {
    let cases = [
        ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
        ("a8eb 1064 9cbf", "no-cache"),
        ("25a8 49e9 5ba9 7d7f", "custom-key"),
        ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
        ("6402", "302"),
        ("aec3 771a 4b", "private"),
    ];
    for (encoded, text) in cases {
        assert_eq!(huffman_decode(&hex(encoded), 0).unwrap(), text.as_bytes());
        assert_eq!(huffman_encode(text.as_bytes()), hex(encoded), "{text}");
    }
}

#[test]
fn huffman_round_trips_every_byte() {
    let every_byte: Vec<u8> = (0..=255).collect();
    assert_eq!(
        huffman_decode(&huffman_encode(&every_byte), 0).unwrap(),
        every_byte
    );
}

#[test]
fn huffman_refuses_bad_padding_and_eos() {
    let mut long_padding = huffman_encode(b"302");
    long_padding.push(0xff);
    assert!(
        huffman_decode(&long_padding, 0).is_err(),
        "8 bits of padding"
    );
    assert!(huffman_decode(&[0x00], 0).is_err(), "padding of zeros");
    assert!(huffman_decode(&[0xff, 0xff, 0xff, 0xff], 0).is_err(), "EOS");
}

#[test]
fn integers_round_trip_across_the_prefix_boundary() {
    for value in [0u64, 1, 30, 31, 32, 127, 128, 1337, 1 << 20] {
        let mut out = Vec::new();
        write_integer(&mut out, 0xe0, 5, value);
        let mut position = 0;
        assert_eq!(read_integer(&out, &mut position, 5).unwrap(), value);
        assert_eq!(position, out.len());
        assert_eq!(out[0] & 0xe0, 0xe0, "flags kept");
    }
    let mut out = Vec::new();
    write_integer(&mut out, 0, 5, 1337);
    assert_eq!(out, [31, 154, 10], "RFC 7541 C.1.2");
}

#[test]
fn authority_with_a_scheme_loses_it_in_every_literal_form() {
    for kind in [0x40, 0x00, 0x10] {
        for huffman in [false, true] {
            let block = literal(
                kind,
                AUTHORITY_STATIC_INDEX,
                b"http://127.0.0.1:2379",
                huffman,
            );
            let expected = literal(kind, AUTHORITY_STATIC_INDEX, b"127.0.0.1:2379", false);
            assert_eq!(
                rewrite_header_block(&block).unwrap(),
                expected,
                "kind {kind:#x}, huffman {huffman}"
            );
        }
    }
    let mut new_name = vec![0x40];
    new_name.extend(string(AUTHORITY_NAME, true));
    let mut block = new_name.clone();
    block.extend(string(b"https://etcd.example:2379", true));
    let mut expected = new_name;
    expected.extend(string(b"etcd.example:2379", false));
    assert_eq!(rewrite_header_block(&block).unwrap(), expected);
}

#[test]
fn everything_else_passes_byte_for_byte() {
    let mut block = vec![0x3f, 0xe1, 0x1f]; // table size update to 4096
    block.extend([0x83, 0x86]); // :method POST, :scheme http
    block.extend(literal(
        0x40,
        AUTHORITY_STATIC_INDEX,
        b"127.0.0.1:2379",
        true,
    ));
    block.extend(literal(0x40, 4, b"/etcdserverpb.KV/Range", true)); // :path
    block.extend(literal(0x00, 58, b"http://user-agent.example", false)); // user-agent
    let mut custom = vec![0x00];
    custom.extend(string(b"x-endpoint", false));
    custom.extend(string(b"http://127.0.0.1:2379", true));
    block.extend(custom);
    block.extend([0xbe]); // an indexed dynamic entry
    assert_eq!(rewrite_header_block(&block).unwrap(), block);
}

#[test]
fn malformed_blocks_are_errors_not_panics() {
    let truncated = literal(0x40, AUTHORITY_STATIC_INDEX, b"http://127.0.0.1:2379", true);
    for cut in 1..truncated.len() {
        assert!(
            rewrite_header_block(&truncated[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let endless_integer = [
        0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ];
    assert!(rewrite_header_block(&endless_integer).is_err());
}

#[test]
fn frames_around_the_headers_stream_through_unchanged() {
    let settings = frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
    let data = frame(0x0, FLAG_END_STREAM, 1, b"grpc message bytes");
    let ok_headers = frame(FRAME_TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0x83, 0x86]);
    let mut input = CLIENT_PREFACE.to_vec();
    input.extend(&settings);
    input.extend(&ok_headers);
    input.extend(&data);
    assert_eq!(rewrite_stream(&input).unwrap(), input);
}

#[test]
fn padded_prioritized_continued_headers_are_rewritten() {
    let authority = literal(0x40, AUTHORITY_STATIC_INDEX, b"http://127.0.0.1:2379", true);
    let (first, second) = authority.split_at(4);
    let mut headers_payload = vec![3]; // pad length
    headers_payload.extend([0x80, 0, 0, 3, 15]); // priority
    headers_payload.extend([0x83]);
    headers_payload.extend(first);
    headers_payload.extend([0, 0, 0]); // padding
    let mut input = CLIENT_PREFACE.to_vec();
    input.extend(frame(
        FRAME_TYPE_HEADERS,
        FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
        5,
        &headers_payload,
    ));
    input.extend(frame(FRAME_TYPE_CONTINUATION, FLAG_END_HEADERS, 5, second));

    let mut block = vec![0x83];
    block.extend(literal(
        0x40,
        AUTHORITY_STATIC_INDEX,
        b"127.0.0.1:2379",
        false,
    ));
    let mut expected_payload = vec![0x80, 0, 0, 3, 15];
    expected_payload.extend(&block);
    let mut expected = CLIENT_PREFACE.to_vec();
    expected.extend(frame(
        FRAME_TYPE_HEADERS,
        FLAG_PRIORITY | FLAG_END_STREAM | FLAG_END_HEADERS,
        5,
        &expected_payload,
    ));
    assert_eq!(rewrite_stream(&input).unwrap(), expected);
}

#[test]
fn a_large_rewritten_block_is_cut_into_default_size_frames() {
    let mut block = Vec::new();
    while block.len() < 2 * FRAME_PAYLOAD_BYTES_MAX + 100 {
        block.extend([0x83, 0x86]);
    }
    block.extend(literal(0x00, AUTHORITY_STATIC_INDEX, b"http://h:1", false));
    let mut input = CLIENT_PREFACE.to_vec();
    for (index, chunk) in block.chunks(10_000).enumerate() {
        let frame_type = if index == 0 {
            FRAME_TYPE_HEADERS
        } else {
            FRAME_TYPE_CONTINUATION
        };
        let last = (index + 1) * 10_000 >= block.len();
        let flags = if last { FLAG_END_HEADERS } else { 0 };
        input.extend(frame(frame_type, flags, 1, chunk));
    }
    let output = rewrite_stream(&input).unwrap();
    let mut position = CLIENT_PREFACE.len();
    let mut reassembled = Vec::new();
    let mut frame_types = Vec::new();
    while position < output.len() {
        let header = &output[position..position + FRAME_HEADER_BYTES];
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        assert!(length <= FRAME_PAYLOAD_BYTES_MAX);
        frame_types.push((header[3], header[4] & FLAG_END_HEADERS != 0));
        position += FRAME_HEADER_BYTES;
        reassembled.extend_from_slice(&output[position..position + length]);
        position += length;
    }
    assert_eq!(reassembled, rewrite_header_block(&block).unwrap());
    assert!(reassembled.ends_with(b"h:1"));
    assert_eq!(
        frame_types,
        [
            (FRAME_TYPE_HEADERS, false),
            (FRAME_TYPE_CONTINUATION, false),
            (FRAME_TYPE_CONTINUATION, true)
        ]
    );
}

#[test]
fn broken_framing_is_an_error() {
    let mut interrupted = CLIENT_PREFACE.to_vec();
    interrupted.extend(frame(FRAME_TYPE_HEADERS, 0, 1, &[0x83]));
    interrupted.extend(frame(0x0, 0, 1, b"data"));
    assert!(
        rewrite_stream(&interrupted).is_err(),
        "DATA inside a header block"
    );

    let mut other_stream = CLIENT_PREFACE.to_vec();
    other_stream.extend(frame(FRAME_TYPE_HEADERS, 0, 1, &[0x83]));
    other_stream.extend(frame(FRAME_TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &[0x86]));
    assert!(
        rewrite_stream(&other_stream).is_err(),
        "CONTINUATION on stream 3"
    );

    let mut over_padded = CLIENT_PREFACE.to_vec();
    over_padded.extend(frame(
        FRAME_TYPE_HEADERS,
        FLAG_PADDED | FLAG_END_HEADERS,
        1,
        &[9, 0x83],
    ));
    assert!(
        rewrite_stream(&over_padded).is_err(),
        "padding past the frame"
    );
}

#[test]
fn a_stream_without_the_http2_preface_passes_untouched() {
    let input = b"GET / HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec();
    assert_eq!(rewrite_stream(&input).unwrap(), input);
}

#[test]
fn an_oversized_header_block_is_refused_before_buffering_it() {
    let mut input = CLIENT_PREFACE.to_vec();
    let mut header = Vec::new();
    write_frame_header(&mut header, 0, FRAME_TYPE_HEADERS, 0, 1);
    header[0..3].copy_from_slice(&[0x20, 0, 0]); // 2 MiB announced
    input.extend(header);
    assert!(matches!(
        rewrite_stream(&input),
        Err(AuthorityFixError::HeaderBlockTooLarge)
    ));
}
