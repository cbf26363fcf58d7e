//! The geometry of the dashboard's SVG pictures, as plain numbers: the
//! licenses timeline (which world held which key, when) and bars of hours.
//! No I/O; the templates only draw what these compute.

use jiff::{SignedDuration, Timestamp};
use tavern_core::LicenseLane;

/// Width of the drawing area of a chart, in SVG units, after its labels.
pub const PLOT_WIDTH: f64 = 700.0;
/// Room for the labels on the left.
pub const LABEL_WIDTH: f64 = 140.0;
/// Height of one lane or bar row.
pub const ROW_HEIGHT: f64 = 28.0;

pub struct Bar {
    pub x: String,
    pub width: String,
    pub label: String,
    /// What a pointer (or a screen reader) is told.
    pub title: String,
    /// A colour of a few, the same for the same world.
    pub hue: u32,
    /// Wide enough to print its label inside.
    pub labelled: bool,
}

pub struct Row {
    pub label: String,
    pub y: String,
    pub text_y: String,
    pub bars: Vec<Bar>,
}

pub struct Tick {
    pub x: String,
    pub label: String,
}

pub struct Timeline {
    pub rows: Vec<Row>,
    pub ticks: Vec<Tick>,
    pub height: String,
    pub width: String,
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

/// A stable colour for a name.
fn hue(name: &str) -> u32 {
    name.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360
}

fn fraction(t: Timestamp, from: Timestamp, span: SignedDuration) -> f64 {
    let part = t.duration_since(from).as_secs_f64() / span.as_secs_f64();
    part.clamp(0.0, 1.0)
}

/// Lanes of keys over `[from, to)`, a bar per world that held the key; an
/// interval still open ends at `now`.
pub fn timeline(lanes: &[LicenseLane], from: Timestamp, to: Timestamp, now: Timestamp) -> Timeline {
    let span = to.duration_since(from);
    let rows = lanes
        .iter()
        .enumerate()
        .map(|(n, lane)| {
            let top = 24.0 + n as f64 * ROW_HEIGHT;
            let bars = lane
                .held
                .iter()
                .filter_map(|h| {
                    let end = h.to.unwrap_or(now).min(to);
                    let (a, b) = (fraction(h.from, from, span), fraction(end, from, span));
                    if b <= a {
                        return None;
                    }
                    let width = (b - a) * PLOT_WIDTH;
                    Some(Bar {
                        x: num(LABEL_WIDTH + a * PLOT_WIDTH),
                        width: num(width.max(2.0)),
                        label: h.slug.clone(),
                        title: format!(
                            "{} on {}: {} – {}",
                            h.slug,
                            lane.label,
                            h.from.strftime("%a %H:%M UTC"),
                            h.to.map_or_else(
                                || "now".to_owned(),
                                |t| t.strftime("%a %H:%M UTC").to_string()
                            )
                        ),
                        hue: hue(&h.slug),
                        labelled: width >= 8.0 * h.slug.len() as f64,
                    })
                })
                .collect();
            Row {
                label: lane.label.clone(),
                y: num(top),
                text_y: num(top + ROW_HEIGHT * 0.62),
                bars,
            }
        })
        .collect();
    let days = (span.as_secs() / 86_400).max(1);
    let ticks = (0..=days)
        .map(|d| {
            let t = from + SignedDuration::from_hours(24 * d);
            Tick {
                x: num(LABEL_WIDTH + fraction(t, from, span) * PLOT_WIDTH),
                label: t.strftime("%a %-d").to_string(),
            }
        })
        .collect();
    Timeline {
        rows,
        ticks,
        height: num(24.0 + lanes.len().max(1) as f64 * ROW_HEIGHT + 8.0),
        width: num(LABEL_WIDTH + PLOT_WIDTH + 30.0),
    }
}

/// Horizontal bars of hours, grouped: a group per user, a bar per month.
pub struct HourBars {
    pub groups: Vec<Group>,
    pub height: String,
    pub width: String,
    pub legend: Vec<(String, u32)>,
}

pub struct Group {
    pub label: String,
    pub label_y: String,
    pub bars: Vec<HourBar>,
}

pub struct HourBar {
    pub y: String,
    pub width: String,
    pub text_x: String,
    pub text_y: String,
    pub hours: String,
    pub month: String,
    pub hue: u32,
}

const BAR_HEIGHT: f64 = 14.0;

/// `rows`: each user's hours for each of `months`, in the same order.
pub fn hour_bars(months: &[String], rows: &[(String, Vec<f64>)]) -> HourBars {
    let most = rows
        .iter()
        .flat_map(|(_, h)| h.iter().copied())
        .fold(0.0f64, f64::max);
    // At least an hour across, so that minutes do not fill the picture.
    let scale = PLOT_WIDTH / most.max(1.0);
    let hues: Vec<u32> = (0..months.len())
        .map(|i| u32::try_from(i * 360 / months.len().max(1)).unwrap_or(0))
        .collect();
    let group_height = months.len() as f64 * (BAR_HEIGHT + 2.0) + 12.0;
    let groups = rows
        .iter()
        .enumerate()
        .map(|(n, (user, hours))| {
            let top = 8.0 + n as f64 * group_height;
            Group {
                label: user.clone(),
                label_y: num(top + BAR_HEIGHT),
                bars: hours
                    .iter()
                    .zip(months.iter().zip(&hues))
                    .enumerate()
                    .map(|(m, (h, (month, hue)))| {
                        let y = top + m as f64 * (BAR_HEIGHT + 2.0);
                        let width = h * scale;
                        HourBar {
                            y: num(y),
                            width: num(width),
                            text_x: num(LABEL_WIDTH + width + 4.0),
                            text_y: num(y + BAR_HEIGHT - 3.0),
                            hours: format!("{h:.1} h"),
                            month: month.clone(),
                            hue: *hue,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    HourBars {
        groups,
        height: num(16.0 + rows.len().max(1) as f64 * group_height),
        width: num(LABEL_WIDTH + PLOT_WIDTH + 60.0),
        legend: months.iter().cloned().zip(hues.iter().copied()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use tavern_core::Held;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn bars_sit_where_their_world_held_the_key() {
        let from = at("2026-11-19T00:00:00Z");
        let to = at("2026-11-26T00:00:00Z");
        let lanes = vec![
            LicenseLane {
                label: "main".into(),
                held: vec![
                    // Began before the picture: drawn from its left edge.
                    Held {
                        slug: "dragon".into(),
                        from: at("2026-11-18T12:00:00Z"),
                        to: Some(at("2026-11-19T12:00:00Z")),
                    },
                    // Still running: drawn up to now.
                    Held {
                        slug: "crypt".into(),
                        from: at("2026-11-22T12:00:00Z"),
                        to: None,
                    },
                ],
            },
            LicenseLane {
                label: "spare".into(),
                held: vec![],
            },
        ];
        let t = timeline(&lanes, from, to, at("2026-11-26T00:00:00Z"));
        assert_eq!(t.rows.len(), 2);
        let bars = &t.rows[0].bars;
        assert_eq!(
            (bars[0].x.as_str(), bars[0].width.as_str()),
            ("140.0", "50.0")
        );
        assert_eq!(
            (bars[1].x.as_str(), bars[1].width.as_str()),
            ("490.0", "350.0")
        );
        assert!(bars[1].title.contains("now"), "{}", bars[1].title);
        assert!(t.rows[1].bars.is_empty());
        assert_eq!(t.ticks.len(), 8);
        assert_eq!(t.ticks[7].x, "840.0");
        assert_eq!(t.rows[1].y, "52.0");
    }

    #[test]
    fn the_longest_bar_fills_the_width() {
        let months = vec!["2026-10".to_owned(), "2026-11".to_owned()];
        let rows = vec![
            ("alice".to_owned(), vec![10.0, 20.0]),
            ("bob".to_owned(), vec![0.0, 5.0]),
        ];
        let c = hour_bars(&months, &rows);
        assert_eq!(c.groups[0].bars[1].width, "700.0");
        assert_eq!(c.groups[0].bars[0].width, "350.0");
        assert_eq!(c.groups[1].bars[0].width, "0.0");
        assert_eq!(c.groups[1].bars[1].hours, "5.0 h");
        assert_eq!(c.legend.len(), 2);
        assert_ne!(c.legend[0].1, c.legend[1].1, "months differ in colour");
        // Nothing used: no bar, and no division by zero; minutes stay
        // small (the scale is at least an hour).
        let none = hour_bars(&months, &[("carol".to_owned(), vec![0.0, 0.004])]);
        assert_eq!(none.groups[0].bars[0].width, "0.0");
        assert_eq!(none.groups[0].bars[1].width, "2.8");
    }
}
