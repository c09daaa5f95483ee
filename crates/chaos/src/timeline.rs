//! The run drawn as one picture, an SVG timeline: time runs left to right;
//! each fault is a shaded band in the row of its kind (and a faint shade
//! over the plot, to line latencies up with it; two overlapping faults are
//! of two kinds, so their bands lie in two rows and their shades add up); each client operation is
//! a point at its call time with its latency on a log scale, coloured by
//! outcome, unanswered ones in a strip above; operations the checker
//! blames are crossed. Seeing a latency wall or a burst of unknowns under
//! a fault says more about recovery than the numbers alone.
//!
//! Owns: laying the picture out and writing it as SVG text. Must never:
//! drop an operation or a fault from the picture (each is one element,
//! which the tests count), or emit anything but well-formed XML (labels
//! are escaped).

use std::fmt::Write as _;

use crate::faults::Fault;
use crate::report::Injected;

const WIDTH_PX: f64 = 1200.0;
const MARGIN_LEFT_PX: f64 = 110.0;
const MARGIN_RIGHT_PX: f64 = 20.0;
const TITLE_HEIGHT_PX: f64 = 40.0;
const FAULT_ROW_HEIGHT_PX: f64 = 18.0;
const ROWS_GAP_PX: f64 = 12.0;
const UNANSWERED_STRIP_HEIGHT_PX: f64 = 24.0;
const PLOT_HEIGHT_PX: f64 = 320.0;
const AXIS_HEIGHT_PX: f64 = 40.0;
const LEGEND_HEIGHT_PX: f64 = 24.0;
const POINT_RADIUS_PX: f64 = 2.0;
const INVALID_CROSS_HALF_PX: f64 = 5.0;
/// The x axis gets at most this many labelled ticks.
const TIME_TICKS_MAX: f64 = 12.0;
/// The latency axis never starts below this (10 µs), so a zero latency
/// still has a place on the log scale.
const LATENCY_FLOOR_MS: f64 = 0.01;

const STYLE: &str = "\
text{font:12px sans-serif;fill:#222}\
.title{font-size:14px;font-weight:bold}\
.axis{stroke:#444;stroke-width:1}\
.grid{stroke:#ddd;stroke-width:1}\
.fault{fill:#e66101;fill-opacity:.75}\
.shade{fill:#e66101;fill-opacity:.08}\
.op{fill-opacity:.6}\
.ok{fill:#1a9850}\
.failed{fill:#fdae61}\
.unknown{fill:#5e3c99}\
.invalid{stroke:#d7191c;stroke-width:2;fill:none}";

/// What the client learnt of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointOutcome {
    /// It took effect, and the client was told so.
    Ok,
    /// It certainly did not take effect (a refused compare, say).
    Failed,
    /// No answer came: it may or may not have taken effect.
    Unknown,
}

impl PointOutcome {
    fn class(self) -> &'static str {
        match self {
            PointOutcome::Ok => "ok",
            PointOutcome::Failed => "failed",
            PointOutcome::Unknown => "unknown",
        }
    }
}

/// One client operation as the timeline draws it, on the history's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationPoint {
    pub call_ns: u64,
    /// When the answer came; `None` when none did.
    pub return_ns: Option<u64>,
    pub outcome: PointOutcome,
    /// Whether the workload's checker blames this operation.
    pub invalid: bool,
}

impl OperationPoint {
    fn latency_ms(&self) -> Option<f64> {
        self.return_ns
            .map(|returned| returned.saturating_sub(self.call_ns) as f64 / 1e6)
    }
}

/// One fault as the timeline draws it.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultBand {
    /// The row it is drawn in: its kind.
    pub row: &'static str,
    pub started_ms: f64,
    pub healed_ms: f64,
    /// The fault told in full, shown on hover.
    pub label: String,
}

impl FaultBand {
    pub fn of(injected: &Injected) -> FaultBand {
        FaultBand {
            row: kind_of(&injected.fault),
            started_ms: injected.started_ms,
            healed_ms: injected.healed_ms,
            label: injected.fault.to_string(),
        }
    }
}

/// The row a fault belongs in.
fn kind_of(fault: &Fault) -> &'static str {
    match fault {
        Fault::Partition { .. } => "partition",
        Fault::Kill { .. } => "kill",
        Fault::Pause { .. } => "pause",
        Fault::Loss { .. } => "loss",
        Fault::Wipe { .. } => "wipe",
        Fault::Membership { .. } => "membership",
    }
}

/// Where things go: the time and latency scales and the rows' places.
struct Layout {
    rows: Vec<&'static str>,
    end_ms: f64,
    latency_low_ms: f64,
    latency_high_ms: f64,
    unanswered_top_px: f64,
    plot_top_px: f64,
    plot_bottom_px: f64,
    height_px: f64,
}

impl Layout {
    fn new(operations: &[OperationPoint], faults: &[FaultBand]) -> Layout {
        let mut rows: Vec<&'static str> = Vec::new();
        for fault in faults {
            if !rows.contains(&fault.row) {
                rows.push(fault.row);
            }
        }
        let operations_end_ms = operations
            .iter()
            .map(|operation| operation.return_ns.unwrap_or(operation.call_ns) as f64 / 1e6);
        let faults_end_ms = faults.iter().map(|fault| fault.healed_ms);
        let end_ms = operations_end_ms.chain(faults_end_ms).fold(1.0, f64::max);
        let latencies = operations.iter().filter_map(OperationPoint::latency_ms);
        let (low, high) = latencies.fold((f64::INFINITY, 0.0_f64), |(low, high), latency| {
            (low.min(latency), high.max(latency))
        });
        let (latency_low_ms, latency_high_ms) = if low.is_finite() {
            let low = 10_f64.powf(low.max(LATENCY_FLOOR_MS).log10().floor());
            let high = 10_f64.powf(high.max(LATENCY_FLOOR_MS).log10().ceil());
            (low, if high > low { high } else { low * 10.0 })
        } else {
            (1.0, 1000.0)
        };
        let unanswered_top_px =
            TITLE_HEIGHT_PX + rows.len() as f64 * FAULT_ROW_HEIGHT_PX + ROWS_GAP_PX;
        let plot_top_px = unanswered_top_px + UNANSWERED_STRIP_HEIGHT_PX;
        let plot_bottom_px = plot_top_px + PLOT_HEIGHT_PX;
        Layout {
            rows,
            end_ms,
            latency_low_ms,
            latency_high_ms,
            unanswered_top_px,
            plot_top_px,
            plot_bottom_px,
            height_px: plot_bottom_px + AXIS_HEIGHT_PX + LEGEND_HEIGHT_PX,
        }
    }

    fn x(&self, ms: f64) -> f64 {
        MARGIN_LEFT_PX
            + (ms / self.end_ms).clamp(0.0, 1.0) * (WIDTH_PX - MARGIN_LEFT_PX - MARGIN_RIGHT_PX)
    }

    fn y_of_latency(&self, latency_ms: f64) -> f64 {
        let low = self.latency_low_ms.log10();
        let high = self.latency_high_ms.log10();
        let share = (latency_ms.max(self.latency_low_ms).log10() - low) / (high - low);
        self.plot_bottom_px - share.clamp(0.0, 1.0) * PLOT_HEIGHT_PX
    }

    fn row_top(&self, row: &str) -> f64 {
        let index = self.rows.iter().position(|name| *name == row).unwrap_or(0);
        TITLE_HEIGHT_PX + index as f64 * FAULT_ROW_HEIGHT_PX
    }

    fn y_of(&self, operation: &OperationPoint) -> f64 {
        match operation.latency_ms() {
            Some(latency) => self.y_of_latency(latency),
            None => self.unanswered_top_px + UNANSWERED_STRIP_HEIGHT_PX / 2.0,
        }
    }
}

/// The timeline of a run as SVG text.
pub fn render(title: &str, operations: &[OperationPoint], faults: &[FaultBand]) -> String {
    let layout = Layout::new(operations, faults);
    let mut svg = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{:.0}" viewBox="0 0 {WIDTH_PX} {:.0}">"#,
        layout.height_px, layout.height_px
    );
    let _ = writeln!(svg, "<style>{STYLE}</style>");
    let _ = writeln!(
        svg,
        r#"<text class="title" x="{MARGIN_LEFT_PX}" y="24">{}</text>"#,
        escape(title)
    );
    draw_faults(&mut svg, &layout, faults);
    draw_axes(&mut svg, &layout);
    draw_operations(&mut svg, &layout, operations);
    draw_legend(&mut svg, &layout);
    svg.push_str("</svg>\n");
    svg
}

fn draw_faults(svg: &mut String, layout: &Layout, faults: &[FaultBand]) {
    for row in &layout.rows {
        let _ = writeln!(
            svg,
            r#"<text x="8" y="{:.1}">{row}</text>"#,
            layout.row_top(row) + FAULT_ROW_HEIGHT_PX - 5.0
        );
    }
    for fault in faults {
        let left = layout.x(fault.started_ms);
        let width = (layout.x(fault.healed_ms) - left).max(1.0);
        let label = escape(&format!(
            "{} ({:.0} ms .. {:.0} ms)",
            fault.label, fault.started_ms, fault.healed_ms
        ));
        let _ = writeln!(
            svg,
            r#"<rect class="shade" x="{left:.1}" y="{:.1}" width="{width:.1}" height="{:.1}"/>"#,
            layout.unanswered_top_px,
            layout.plot_bottom_px - layout.unanswered_top_px
        );
        let _ = writeln!(
            svg,
            r#"<rect class="fault" x="{left:.1}" y="{:.1}" width="{width:.1}" height="{:.1}"><title>{label}</title></rect>"#,
            layout.row_top(fault.row) + 2.0,
            FAULT_ROW_HEIGHT_PX - 4.0
        );
    }
}

fn draw_axes(svg: &mut String, layout: &Layout) {
    let right = WIDTH_PX - MARGIN_RIGHT_PX;
    let _ = writeln!(
        svg,
        r#"<text x="8" y="{:.1}">no answer</text>"#,
        layout.unanswered_top_px + UNANSWERED_STRIP_HEIGHT_PX / 2.0 + 4.0
    );
    let mut decade = layout.latency_low_ms;
    while decade <= layout.latency_high_ms * 1.000_001 {
        let y = layout.y_of_latency(decade);
        let _ = writeln!(
            svg,
            r#"<line class="grid" x1="{MARGIN_LEFT_PX}" y1="{y:.1}" x2="{right}" y2="{y:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text>"#,
            MARGIN_LEFT_PX - 6.0,
            y + 4.0,
            decade
        );
        decade *= 10.0;
    }
    let _ = writeln!(
        svg,
        r#"<text x="8" y="{:.1}">latency</text>"#,
        layout.plot_top_px + PLOT_HEIGHT_PX / 2.0
    );
    let step_ms = time_step_ms(layout.end_ms);
    let mut tick_ms = 0.0;
    while tick_ms <= layout.end_ms {
        let x = layout.x(tick_ms);
        let label = if step_ms >= 1000.0 {
            format!("{} s", tick_ms / 1000.0)
        } else {
            format!("{tick_ms} ms")
        };
        let _ = writeln!(
            svg,
            r#"<line class="axis" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            layout.plot_bottom_px,
            layout.plot_bottom_px + 5.0,
            layout.plot_bottom_px + 18.0
        );
        tick_ms += step_ms;
    }
    let _ = writeln!(
        svg,
        r#"<line class="axis" x1="{MARGIN_LEFT_PX}" y1="{:.1}" x2="{right}" y2="{:.1}"/><line class="axis" x1="{MARGIN_LEFT_PX}" y1="{:.1}" x2="{MARGIN_LEFT_PX}" y2="{:.1}"/>"#,
        layout.plot_bottom_px, layout.plot_bottom_px, layout.plot_top_px, layout.plot_bottom_px
    );
}

/// A round step (1, 2 or 5 times a power of ten, in ms) that puts at most
/// `TIME_TICKS_MAX` ticks on the time axis.
fn time_step_ms(end_ms: f64) -> f64 {
    let mut power = 1.0;
    loop {
        for factor in [1.0, 2.0, 5.0] {
            if end_ms / (factor * power) <= TIME_TICKS_MAX {
                return factor * power;
            }
        }
        power *= 10.0;
    }
}

fn draw_operations(svg: &mut String, layout: &Layout, operations: &[OperationPoint]) {
    for operation in operations {
        let _ = writeln!(
            svg,
            r#"<circle class="op {}" cx="{:.1}" cy="{:.1}" r="{POINT_RADIUS_PX}"/>"#,
            operation.outcome.class(),
            layout.x(operation.call_ns as f64 / 1e6),
            layout.y_of(operation)
        );
    }
    // The crosses go last, on top of every point.
    for operation in operations.iter().filter(|operation| operation.invalid) {
        let (x, y) = (
            layout.x(operation.call_ns as f64 / 1e6),
            layout.y_of(operation),
        );
        let half = INVALID_CROSS_HALF_PX;
        let _ = writeln!(
            svg,
            r#"<path class="invalid" d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}"><title>blamed by the checker: called at {:.3} ms</title></path>"#,
            x - half,
            y - half,
            x + half,
            y + half,
            x - half,
            y + half,
            x + half,
            y - half,
            operation.call_ns as f64 / 1e6
        );
    }
}

fn draw_legend(svg: &mut String, layout: &Layout) {
    let y = layout.plot_bottom_px + AXIS_HEIGHT_PX + 8.0;
    let mut x = MARGIN_LEFT_PX;
    for (class, label) in [
        ("ok", "ok"),
        ("failed", "failed (certainly no effect)"),
        ("unknown", "unknown (no answer)"),
    ] {
        let _ = writeln!(
            svg,
            r#"<circle class="key {class}" cx="{x:.1}" cy="{:.1}" r="5"/><text x="{:.1}" y="{:.1}">{label}</text>"#,
            y - 4.0,
            x + 10.0,
            y
        );
        x += 230.0;
    }
    let _ = writeln!(
        svg,
        r#"<path class="key invalid" d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}"/><text x="{:.1}" y="{y:.1}">blamed by the checker</text>"#,
        x - 5.0,
        y - 9.0,
        x + 5.0,
        y + 1.0,
        x - 5.0,
        y + 1.0,
        x + 5.0,
        y - 9.0,
        x + 10.0
    );
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(call_ms: u64, latency_ms: Option<u64>, outcome: PointOutcome) -> OperationPoint {
        OperationPoint {
            call_ns: call_ms * 1_000_000,
            return_ns: latency_ms.map(|latency| (call_ms + latency) * 1_000_000),
            outcome,
            invalid: false,
        }
    }

    fn band(row: &'static str, started_ms: f64, healed_ms: f64) -> FaultBand {
        FaultBand {
            row,
            started_ms,
            healed_ms,
            label: format!("{row} m1->m2 & <more>"),
        }
    }

    fn elements_of_class<'a>(
        document: &'a roxmltree::Document<'a>,
        class: &str,
    ) -> Vec<roxmltree::Node<'a, 'a>> {
        document
            .descendants()
            .filter(|node| {
                node.attribute("class")
                    .is_some_and(|classes| classes.split(' ').any(|name| name == class))
            })
            .collect()
    }

    fn number(node: &roxmltree::Node<'_, '_>, attribute: &str) -> f64 {
        node.attribute(attribute)
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{attribute} of {node:?} is a number"))
    }

    fn hand_made() -> (Vec<OperationPoint>, Vec<FaultBand>) {
        let mut operations = vec![
            point(100, Some(2), PointOutcome::Ok),
            point(900, Some(40), PointOutcome::Ok),
            point(1_500, Some(1_800), PointOutcome::Failed),
            point(2_000, None, PointOutcome::Unknown),
            point(3_000, Some(5), PointOutcome::Ok),
            point(4_000, Some(3), PointOutcome::Ok),
        ];
        operations[2].invalid = true;
        operations[3].invalid = true;
        let faults = vec![
            band("partition", 800.0, 2_500.0),
            band("kill", 2_600.0, 3_100.0),
            band("partition", 3_500.0, 3_900.0),
        ];
        (operations, faults)
    }

    #[test]
    fn the_drawing_is_xml_with_one_point_per_operation_and_one_band_per_fault() {
        let (operations, faults) = hand_made();
        let svg = render("register <run> & more", &operations, &faults);
        let document = roxmltree::Document::parse(&svg).expect("the timeline parses as XML");
        assert_eq!(document.root_element().tag_name().name(), "svg");
        let points = elements_of_class(&document, "op");
        assert_eq!(points.len(), operations.len());
        for (outcome, expected) in [("ok", 4), ("failed", 1), ("unknown", 1)] {
            let drawn = points
                .iter()
                .filter(|node| node.attribute("class") == Some(&format!("op {outcome}")))
                .count();
            assert_eq!(drawn, expected, "{outcome} points");
        }
        let bands = elements_of_class(&document, "fault");
        assert_eq!(bands.len(), faults.len());
        let labels: Vec<&str> = document
            .descendants()
            .filter(|node| node.is_text())
            .filter_map(|node| node.text())
            .collect();
        assert!(labels.contains(&"partition") && labels.contains(&"kill"));
        assert!(labels.contains(&"partition m1->m2 & <more> (800 ms .. 2500 ms)"));
        // Two faults of one kind share a row; another kind has its own.
        let tops: Vec<f64> = bands.iter().map(|band| number(band, "y")).collect();
        assert_eq!(tops[0], tops[2]);
        assert_ne!(tops[0], tops[1]);
    }

    #[test]
    fn overlapping_faults_are_drawn_over_the_same_time_in_rows_of_their_own() {
        let faults = vec![
            band("partition", 800.0, 2_500.0),
            band("pause", 1_200.0, 3_000.0),
        ];
        let svg = render("run", &[point(100, Some(2), PointOutcome::Ok)], &faults);
        let document = roxmltree::Document::parse(&svg).expect("the timeline parses as XML");
        let bands = elements_of_class(&document, "fault");
        assert_eq!(bands.len(), 2);
        let (partition, pause) = (&bands[0], &bands[1]);
        assert!(number(partition, "y") + number(partition, "height") <= number(pause, "y"));
        let overlap_start = number(pause, "x");
        let partition_end = number(partition, "x") + number(partition, "width");
        assert!(
            overlap_start < partition_end,
            "the pause starts within the partition"
        );
    }

    #[test]
    fn the_blamed_operations_are_crossed_where_their_points_are() {
        let (operations, faults) = hand_made();
        let svg = render("run", &operations, &faults);
        let document = roxmltree::Document::parse(&svg).expect("the timeline parses as XML");
        let points = elements_of_class(&document, "op");
        let crosses: Vec<_> = elements_of_class(&document, "invalid")
            .into_iter()
            .filter(|node| node.attribute("class") == Some("invalid"))
            .collect();
        assert_eq!(crosses.len(), 2);
        for (cross, blamed) in crosses.iter().zip([2, 3]) {
            let path = cross.attribute("d").expect("a cross has a path");
            let start: Vec<f64> = path[1..]
                .split('L')
                .next()
                .expect("a path starts with a move")
                .split(' ')
                .map(|coordinate| coordinate.parse().expect("a coordinate"))
                .collect();
            let centre = (
                start[0] + INVALID_CROSS_HALF_PX,
                start[1] + INVALID_CROSS_HALF_PX,
            );
            let point = &points[blamed];
            assert!((centre.0 - number(point, "cx")).abs() < 0.2, "{path}");
            assert!((centre.1 - number(point, "cy")).abs() < 0.2, "{path}");
        }
    }

    #[test]
    fn a_longer_latency_is_drawn_higher_and_no_answer_above_them_all() {
        let (operations, faults) = hand_made();
        let svg = render("run", &operations, &faults);
        let document = roxmltree::Document::parse(&svg).expect("the timeline parses as XML");
        let heights: Vec<f64> = elements_of_class(&document, "op")
            .iter()
            .map(|point| number(point, "cy"))
            .collect();
        // Latencies 2, 40, 1800, none, 5, 3 ms; SVG's y grows downwards.
        assert!(heights[0] > heights[5] && heights[5] > heights[4]);
        assert!(heights[4] > heights[1] && heights[1] > heights[2]);
        assert!(heights[3] < heights[2]);
    }

    #[test]
    fn an_empty_run_still_draws_a_valid_picture() {
        let svg = render("nothing", &[], &[]);
        let document = roxmltree::Document::parse(&svg).expect("the timeline parses as XML");
        assert!(elements_of_class(&document, "op").is_empty());
        assert!(elements_of_class(&document, "fault").is_empty());
    }
}
