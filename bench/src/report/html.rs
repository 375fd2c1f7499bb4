//! The report as one self-contained HTML page: inline SVG plots (no scripts or styles fetched
//! from anywhere), tables of every level, and, given a baseline, both runs side by side with
//! deltas.

use std::fmt::Write as _;

use super::{Level, Protocol, Report, delta};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 46.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One line of a chart.
struct Series {
    name: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// How values map onto an axis.
#[derive(Clone, Copy)]
enum Scale {
    Linear,
    /// log10; values at or under zero are left out.
    Log,
}

struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x_scale: Scale,
    y_scale: Scale,
    /// Ticks on x as (value, label); empty: evenly spaced numbers.
    x_ticks: Vec<(f64, String)>,
    series: Vec<Series>,
}

fn transform(scale: Scale, v: f64) -> Option<f64> {
    match scale {
        Scale::Linear => Some(v),
        Scale::Log => (v > 0.0).then(|| v.log10()),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn number(v: f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{:.1}M", v / 1e6),
        a if a >= 1e4 => format!("{:.0}k", v / 1e3),
        a if a >= 1e3 => format!("{:.1}k", v / 1e3),
        a if a >= 10.0 || a == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.1}"),
    }
}

/// A round step (1, 2 or 5 × 10ⁿ) that covers `range` in at most five steps.
fn nice_step(range: f64) -> f64 {
    let raw = (range / 5.0).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * magnitude)
}

impl Chart<'_> {
    fn svg(&self) -> String {
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| &s.points)
            .filter_map(|&(x, y)| Some((transform(self.x_scale, x)?, transform(self.y_scale, y)?)))
            .collect();
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}"><text x="{cx}" y="20" text-anchor="middle" class="title">{title}</text>"#,
            title = escape(self.title),
            cx = WIDTH / 2.0,
        );
        if points.is_empty() {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle">no data</text></svg>"#,
                WIDTH / 2.0,
                HEIGHT / 2.0
            );
            return out;
        }
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in &points {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if let Scale::Linear = self.y_scale {
            y0 = y0.min(0.0);
            let step = nice_step(y1 - y0);
            y1 = y0 + ((y1 - y0) / step).ceil().max(1.0) * step;
        }
        if let Scale::Log = self.y_scale {
            y0 = y0.floor();
            y1 = y1.ceil().max(y0 + 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * plot_w;
        let py = |y: f64| TOP + plot_h - (y - y0) / (y1 - y0) * plot_h;
        // Axes and grid.
        let _ = write!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>"##
        );
        let y_ticks: Vec<f64> = match self.y_scale {
            Scale::Log => std::iter::successors(Some(y0), |e| Some(e + 1.0))
                .take_while(|&e| e <= y1)
                .collect(),
            Scale::Linear => {
                let step = nice_step(y1 - y0);
                std::iter::successors(Some(y0), |t| Some(t + step))
                    .take_while(|&t| t <= y1 + step / 2.0)
                    .collect()
            }
        };
        for t in y_ticks {
            let label = match self.y_scale {
                Scale::Log => number(10f64.powf(t)),
                Scale::Linear => number(t),
            };
            let y = py(t);
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end" class="tick">{label}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0
            );
        }
        let x_ticks: Vec<(f64, String)> = if self.x_ticks.is_empty() {
            // Round values from the first multiple of the step inside the range.
            let step = nice_step(x1 - x0);
            let first = (x0 / step).ceil() * step;
            std::iter::successors(Some(first), |t| Some(t + step))
                .take_while(|&t| t <= x1 + step * 1e-9)
                .map(|v| (v, number(v)))
                .collect()
        } else {
            self.x_ticks.clone()
        };
        for (t, label) in x_ticks {
            let Some(tx) = transform(self.x_scale, t) else {
                continue;
            };
            let x = px(tx);
            let _ = write!(
                out,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
                TOP + plot_h + 16.0,
                escape(&label)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">{}</text><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle" class="axis">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 8.0,
            escape(self.x_label),
            TOP + plot_h / 2.0,
            escape(self.y_label)
        );
        // Lines, markers and the legend.
        for (i, series) in self.series.iter().enumerate() {
            let coords: Vec<String> = series
                .points
                .iter()
                .filter_map(|&(x, y)| {
                    Some((transform(self.x_scale, x)?, transform(self.y_scale, y)?))
                })
                .map(|(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let dash = if series.dashed {
                r#" stroke-dasharray="5 4""#
            } else {
                ""
            };
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
                series.color,
                coords.join(" ")
            );
            if coords.len() <= 32 {
                for c in &coords {
                    if let Some((x, y)) = c.split_once(',') {
                        let _ = write!(
                            out,
                            r#"<circle cx="{x}" cy="{y}" r="2.5" fill="{}"/>"#,
                            series.color
                        );
                    }
                }
            }
            let ly = TOP + 10.0 + i as f64 * 18.0;
            let lx = WIDTH - RIGHT + 12.0;
            let _ = write!(
                out,
                r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}" class="legend">{}</text>"#,
                lx + 22.0,
                series.color,
                lx + 28.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        out.push_str("</svg>");
        out
    }
}

fn levels_of(report: &Report, protocol: Protocol) -> Vec<&Level> {
    let mut levels: Vec<&Level> = report
        .levels
        .iter()
        .filter(|l| l.protocol == protocol)
        .collect();
    levels.sort_by_key(|l| l.level);
    levels
}

fn concurrency_ticks(levels: &[&Level]) -> Vec<(f64, String)> {
    levels
        .iter()
        .map(|l| (l.concurrency as f64, l.concurrency.to_string()))
        .collect()
}

/// Latency percentiles per level (log–log), with the baseline's p50 and p99 dashed.
fn latency_chart(report: &Report, baseline: Option<&Report>, protocol: Protocol) -> String {
    let levels = levels_of(report, protocol);
    let pick = |levels: &[&Level], f: fn(&Level) -> u64| -> Vec<(f64, f64)> {
        levels
            .iter()
            .map(|l| (l.concurrency as f64, f(l) as f64))
            .collect()
    };
    let mut series = vec![
        Series {
            name: String::from("p50"),
            color: COLORS[0],
            dashed: false,
            points: pick(&levels, |l| l.result.latency_us.p50),
        },
        Series {
            name: String::from("p99"),
            color: COLORS[1],
            dashed: false,
            points: pick(&levels, |l| l.result.latency_us.p99),
        },
        Series {
            name: String::from("p99.9"),
            color: COLORS[2],
            dashed: false,
            points: pick(&levels, |l| l.result.latency_us.p99_9),
        },
        Series {
            name: String::from("max"),
            color: COLORS[3],
            dashed: false,
            points: pick(&levels, |l| l.result.latency_us.max),
        },
    ];
    if let Some(base) = baseline {
        let base_levels = levels_of(base, protocol);
        series.push(Series {
            name: String::from("p50 baseline"),
            color: COLORS[0],
            dashed: true,
            points: pick(&base_levels, |l| l.result.latency_us.p50),
        });
        series.push(Series {
            name: String::from("p99 baseline"),
            color: COLORS[1],
            dashed: true,
            points: pick(&base_levels, |l| l.result.latency_us.p99),
        });
    }
    let title = format!("{} latency per level", protocol.name());
    Chart {
        title: &title,
        x_label: "requests in flight",
        y_label: "latency (µs, log)",
        x_scale: Scale::Log,
        y_scale: Scale::Log,
        x_ticks: concurrency_ticks(&levels),
        series,
    }
    .svg()
}

/// Achieved requests per second per level, each protocol (and the baseline's, dashed).
fn throughput_chart(report: &Report, baseline: Option<&Report>) -> String {
    let mut series = Vec::new();
    let mut ticks = Vec::new();
    let runs = [(Some(report), false, ""), (baseline, true, " baseline")];
    for (run, dashed, suffix) in runs {
        let Some(run) = run else { continue };
        for (i, protocol) in run.protocols().into_iter().enumerate() {
            let levels = levels_of(run, protocol);
            if ticks.len() < levels.len() {
                ticks = concurrency_ticks(&levels);
            }
            series.push(Series {
                name: format!("{}{suffix}", protocol.name()),
                color: COLORS.get(i * 2).copied().unwrap_or(COLORS[0]),
                dashed,
                points: levels
                    .iter()
                    .map(|l| (l.concurrency as f64, l.result.achieved_rps))
                    .collect(),
            });
        }
    }
    Chart {
        title: "Throughput per level",
        x_label: "requests in flight",
        y_label: "requests per second",
        x_scale: Scale::Log,
        y_scale: Scale::Linear,
        x_ticks: ticks,
        series,
    }
    .svg()
}

/// Responses per second over the run, each level's per-second series placed at its start.
fn timeline_chart(report: &Report) -> String {
    let series = report
        .protocols()
        .into_iter()
        .enumerate()
        .map(|(i, protocol)| Series {
            name: protocol.name().to_string(),
            color: COLORS.get(i * 2).copied().unwrap_or(COLORS[0]),
            dashed: false,
            points: levels_of(report, protocol)
                .iter()
                .flat_map(|l| {
                    let seconds = l.result.duration_s;
                    l.result.per_second.iter().map(move |s| {
                        // The last bucket (the only one of a level under a second) is partial.
                        let span = (seconds - s.t as f64).clamp(1e-3, 1.0);
                        (
                            l.started_s + s.t as f64 + span / 2.0,
                            s.responses as f64 / span,
                        )
                    })
                })
                .collect(),
        })
        .collect();
    Chart {
        title: "Throughput over time",
        x_label: "seconds since the start",
        y_label: "responses per second",
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        x_ticks: Vec::new(),
        series,
    }
    .svg()
}

fn level_table(out: &mut String, report: &Report) {
    out.push_str("<table><tr><th>protocol</th><th>level</th><th>in flight</th><th>req/s</th><th>p50 µs</th><th>p90</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>max</th><th>sent</th><th>answered</th><th>failed</th><th>server cores</th><th>req per core-s</th><th>SLO</th></tr>");
    for l in &report.levels {
        let r = &l.result;
        let (cores, per_core) =
            l.server
                .as_ref()
                .map_or((String::from("—"), String::from("—")), |s| {
                    (
                        format!("{:.2}", s.cpu_cores),
                        format!("{:.0}", s.requests_per_core_second),
                    )
                });
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{cores}</td><td>{per_core}</td><td class=\"{}\">{}</td></tr>",
            l.protocol.name(),
            l.level,
            l.concurrency,
            r.achieved_rps,
            r.latency_us.p50,
            r.latency_us.p90,
            r.latency_us.p99,
            r.latency_us.p99_9,
            r.latency_us.p99_99,
            r.latency_us.max,
            r.sent,
            r.answered,
            r.errors.failed(),
            if l.within_slo { "ok" } else { "bad" },
            if l.within_slo { "held" } else { "breached" },
        );
    }
    out.push_str("</table>");
}

fn comparison_table(out: &mut String, a: &Report, b: &Report) {
    out.push_str("<table><tr><th>protocol</th><th>level</th><th>in flight</th><th>req/s baseline</th><th>req/s this</th><th>Δ</th><th>p50 baseline</th><th>p50 this</th><th>Δ</th><th>p99 baseline</th><th>p99 this</th><th>Δ</th></tr>");
    for l in &b.levels {
        let Some(base) = a.level(l.protocol, l.level) else {
            continue;
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            l.protocol.name(),
            l.level,
            l.concurrency,
            base.result.achieved_rps,
            l.result.achieved_rps,
            delta(base.result.achieved_rps, l.result.achieved_rps),
            base.result.latency_us.p50,
            l.result.latency_us.p50,
            delta(
                base.result.latency_us.p50 as f64,
                l.result.latency_us.p50 as f64
            ),
            base.result.latency_us.p99,
            l.result.latency_us.p99,
            delta(
                base.result.latency_us.p99 as f64,
                l.result.latency_us.p99 as f64
            ),
        );
    }
    out.push_str("</table>");
}

/// The whole page. With `baseline`, the plots overlay it and a delta table follows.
pub fn render(report: &Report, baseline: Option<&Report>) -> String {
    let mut out = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>beast-bench Run 17 report</title><style>\
         body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
         .plots{display:flex;flex-wrap:wrap;gap:12px}svg.plot{background:#fff;border:1px solid #ddd}\
         svg .title{font-size:14px;font-weight:600}svg .tick,svg .legend{font-size:11px}svg .axis{font-size:12px}\
         table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}\
         td.ok{color:#2a7a2a}td.bad{color:#b22}</style></head><body>",
    );
    let s = &report.settings;
    let _ = write!(
        out,
        "<h1>Run 17 replay</h1><p>{} — {} CPUs ({}), kernel {}. Levels of {:.2} s after {:.2} s warm-up; SLO p99 ≤ {} µs, error budget {:.3}%. UDP {}, HTTP {}.</p>",
        escape(&report.tool),
        report.machine.cpus,
        escape(&report.machine.cpu_model),
        escape(&report.machine.kernel),
        s.level_duration_s,
        s.warmup_s,
        s.slo_p99_us,
        s.error_budget * 100.0,
        escape(s.udp_target.as_deref().unwrap_or("—")),
        escape(s.http_target.as_deref().unwrap_or("—")),
    );
    out.push_str("<h2>Knee</h2><ul>");
    for knee in &report.knees {
        let _ = write!(
            out,
            "<li>{}: {}</li>",
            knee.protocol.name(),
            match (knee.level, knee.concurrency) {
                (Some(level), Some(c)) => format!(
                    "level {level} ({c} in flight), {:.0} req/s at p99 {} µs{}",
                    knee.achieved_rps,
                    knee.p99_us,
                    knee.next_breach.as_ref().map_or(
                        String::from(" — every level held"),
                        |b| format!(" — next: {}", escape(b))
                    )
                ),
                _ => format!(
                    "none — {}",
                    escape(knee.next_breach.as_deref().unwrap_or(""))
                ),
            }
        );
    }
    out.push_str("</ul><h2>Plots</h2><div class=\"plots\">");
    for protocol in report.protocols() {
        out.push_str(&latency_chart(report, baseline, protocol));
    }
    out.push_str(&throughput_chart(report, baseline));
    out.push_str(&timeline_chart(report));
    out.push_str("</div><h2>Levels</h2>");
    level_table(&mut out, report);
    if let Some(base) = baseline {
        out.push_str("<h2>Against the baseline</h2>");
        let _ = write!(
            out,
            "<p>Baseline: {} ({} levels).</p>",
            escape(&base.tool),
            base.levels.len()
        );
        comparison_table(&mut out, base, report);
    }
    // Marks the page once the browser has laid the plots out, for the headless check.
    out.push_str(
        "<script>addEventListener('load',()=>{const n=[...document.querySelectorAll('svg.plot')]\
         .filter(s=>s.getBBox().width>0&&s.querySelectorAll('polyline').length>0).length;\
         document.body.dataset.plotsRendered=n;});</script></body></html>\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_steps() {
        let cases: &[(f64, f64)] = &[
            (265_000.0, 100_000.0),
            (100.0, 20.0),
            (9.0, 2.0),
            (1.0, 0.2),
        ];
        for (range, step) in cases {
            assert!(
                (nice_step(*range) - step).abs() < 1e-9,
                "{range}: {}",
                nice_step(*range)
            );
        }
    }
}
