//! The put benchmark's table: one markdown row per (members, clients, system)
//! and, where both systems ran, a `raftkv/etcd` row of ratios. It only
//! formats; it never measures.

use std::fmt::Write as _;

use super::cluster::System;
use super::load::LoadResult;

/// One measured run.
#[derive(Debug)]
pub struct Row {
    pub system: System,
    pub members: usize,
    pub clients: usize,
    pub puts_per_second: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_p999: f64,
    /// CPU seconds of every member process together, per 1000 successful puts.
    pub cpu_seconds_per_1000_puts: f64,
    pub failed: u64,
}

impl Row {
    pub fn new(
        system: System,
        members: usize,
        clients: usize,
        result: &LoadResult,
        cpu_seconds: f64,
    ) -> Row {
        let micros_to_ms =
            |quantile: f64| result.latency_us.value_at_quantile(quantile) as f64 / 1000.0;
        let seconds = result.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let per_1000 = if result.succeeded == 0 {
            f64::NAN
        } else {
            cpu_seconds * 1000.0 / result.succeeded as f64
        };
        Row {
            system,
            members,
            clients,
            puts_per_second: result.succeeded as f64 / seconds,
            latency_ms_p50: micros_to_ms(0.5),
            latency_ms_p99: micros_to_ms(0.99),
            latency_ms_p999: micros_to_ms(0.999),
            cpu_seconds_per_1000_puts: per_1000,
            failed: result.failed,
        }
    }
}

pub const TABLE_HEADER: &str = "| members | clients | system | puts/s | p50 ms | p99 ms | p99.9 ms | CPU s/1000 puts | failed |\n\
                                | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |";

/// The markdown line of one row.
pub fn format_row(row: &Row) -> String {
    format!(
        "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
        row.members,
        row.clients,
        row.system.name(),
        row.puts_per_second,
        row.latency_ms_p50,
        row.latency_ms_p99,
        row.latency_ms_p999,
        row.cpu_seconds_per_1000_puts,
        row.failed
    )
}

/// The ratio line raftkv/etcd for one (members, clients): above 1 is better
/// for puts/s, below 1 is better for latency and CPU.
pub fn format_ratio(raftkv: &Row, etcd: &Row) -> String {
    debug_assert!(raftkv.members == etcd.members && raftkv.clients == etcd.clients);
    let ratio = |ours: f64, theirs: f64| format!("{:.2}x", ours / theirs);
    format!(
        "| {} | {} | raftkv/etcd | {} | {} | {} | {} | {} | |",
        raftkv.members,
        raftkv.clients,
        ratio(raftkv.puts_per_second, etcd.puts_per_second),
        ratio(raftkv.latency_ms_p50, etcd.latency_ms_p50),
        ratio(raftkv.latency_ms_p99, etcd.latency_ms_p99),
        ratio(raftkv.latency_ms_p999, etcd.latency_ms_p999),
        ratio(
            raftkv.cpu_seconds_per_1000_puts,
            etcd.cpu_seconds_per_1000_puts
        ),
    )
}

/// The whole table: rows grouped by members and clients, each group's
/// ratio row after it.
pub fn table(rows: &[Row]) -> String {
    let mut keys: Vec<(usize, usize)> = rows.iter().map(|row| (row.members, row.clients)).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut text = String::from(TABLE_HEADER);
    for (members, clients) in keys {
        let group = || {
            rows.iter()
                .filter(move |row| row.members == members && row.clients == clients)
        };
        for row in group() {
            let _ = write!(text, "\n{}", format_row(row));
        }
        let find = |system| group().find(|row| row.system == system);
        if let (Some(raftkv), Some(etcd)) = (find(System::Raftkv), find(System::Etcd)) {
            let _ = write!(text, "\n{}", format_ratio(raftkv, etcd));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: System, clients: usize, puts_per_second: f64, p99: f64) -> Row {
        Row {
            system,
            members: 1,
            clients,
            puts_per_second,
            latency_ms_p50: 1.0,
            latency_ms_p99: p99,
            latency_ms_p999: 4.0,
            cpu_seconds_per_1000_puts: 0.5,
            failed: 0,
        }
    }

    #[test]
    fn ratio_row_follows_each_pair() {
        let rows = [
            row(System::Etcd, 64, 1000.0, 8.0),
            row(System::Raftkv, 64, 2000.0, 2.0),
            row(System::Raftkv, 1, 500.0, 1.0),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + 4, "{text}");
        assert!(lines[2].starts_with("| 1 | 1 | raftkv | 500 |"), "{text}");
        assert!(lines[3].contains("| etcd | 1000 |"), "{text}");
        assert_eq!(
            lines[5],
            "| 1 | 64 | raftkv/etcd | 2.00x | 1.00x | 0.25x | 1.00x | 1.00x | |"
        );
    }

    #[test]
    fn no_ratio_without_etcd() {
        let text = table(&[row(System::Raftkv, 1, 300.0, 2.0)]);
        assert!(!text.contains("raftkv/etcd"), "{text}");
    }
}
