//! SVG charts drawn here, inline in the page (no chart library, no script). Output holds
//! numbers and fixed markup only: names and labels are written by the templates, escaped.

use std::fmt::Write;

const W: f64 = 600.0;
const H: f64 = 160.0;
const PAD: f64 = 28.0;

/// A metric's observations over time against its baseline band `mean ± k·std`. The scale
/// is the band's (with a margin), so the band stays readable: points outside the band are
/// anomalies (red), and those beyond the scale sit on its edge with their value written.
pub fn band(points: &[(i64, f64)], mean: f64, std: f64, k: f64) -> String {
    let fin = |v: f64| if v.is_finite() { v } else { 0.0 };
    let (mean, std, k) = (fin(mean), fin(std).abs(), fin(k).abs());
    let (lo, hi) = (mean - k * std, mean + k * std);
    let margin = (k * std).max(mean.abs() * 0.05).max(1e-6);
    let (ymin, ymax) = (lo - margin, hi + margin);
    let finite: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    let tmin = finite.iter().map(|p| p.0).min().unwrap_or(0);
    let tmax = finite.iter().map(|p| p.0).max().unwrap_or(0);
    let y = |v: f64| H - PAD - (v.clamp(ymin, ymax) - ymin) / (ymax - ymin) * (H - 2.0 * PAD);
    let x = |t: i64| {
        if tmax <= tmin {
            W / 2.0
        } else {
            PAD + (t - tmin) as f64 / (tmax - tmin) as f64 * (W - 2.0 * PAD)
        }
    };
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" aria-hidden=\"true\" focusable=\"false\">"
    );
    let (top, bottom) = (y(hi), y(lo));
    let _ = write!(
        s,
        "<rect class=\"band\" x=\"{PAD}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
        W - 2.0 * PAD,
        (bottom - top).max(1.0)
    );
    let _ = write!(
        s,
        "<line class=\"mean\" x1=\"{PAD}\" x2=\"{:.1}\" y1=\"{m:.1}\" y2=\"{m:.1}\"/>",
        W - PAD,
        m = y(mean)
    );
    let line: Vec<String> = finite
        .iter()
        .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
        .collect();
    if line.len() > 1 {
        let _ = write!(
            s,
            "<polyline class=\"series\" points=\"{}\"/>",
            line.join(" ")
        );
    }
    for &(t, v) in &finite {
        let out = v > hi || v < lo;
        let (cx, cy) = (x(t), y(v));
        let _ = write!(
            s,
            "<circle class=\"{}\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{}\"/>",
            if out { "anomaly" } else { "point" },
            if out { 5 } else { 3 }
        );
        if v > ymax || v < ymin {
            let ty = if v > ymax { cy + 16.0 } else { cy - 8.0 };
            let _ = write!(
                s,
                "<text class=\"axis off\" x=\"{:.1}\" y=\"{ty:.1}\">{}{}</text>",
                cx + 8.0,
                if v > ymax { "↑ " } else { "↓ " },
                short(v)
            );
        }
    }
    for (v, ty) in [(hi, top), (lo, bottom)] {
        let _ = write!(
            s,
            "<text class=\"axis\" x=\"2\" y=\"{:.1}\">{}</text>",
            ty + 4.0,
            short(v)
        );
    }
    s.push_str("</svg>");
    s
}

/// A horizontal bar `fraction` (0–1) of the full width: feature contributions.
pub fn bar(fraction: f64) -> String {
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    format!(
        "<svg class=\"bar\" viewBox=\"0 0 100 8\" preserveAspectRatio=\"none\" aria-hidden=\"true\" \
         focusable=\"false\"><rect class=\"track\" width=\"100\" height=\"8\"/><rect class=\"fill\" \
         width=\"{:.1}\" height=\"8\"/></svg>",
        f * 100.0
    )
}

/// A number in at most about five characters.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_outside_the_band_are_anomalies() {
        let pts = [(0, 10.0), (1000, 11.0), (2000, 50.0), (3000, 9.0)];
        let svg = band(&pts, 10.0, 1.0, 3.0);
        assert_eq!(svg.matches("class=\"anomaly\"").count(), 1, "{svg}");
        assert_eq!(svg.matches("class=\"point\"").count(), 3, "{svg}");
        assert!(svg.contains("<polyline"));
        assert!(
            svg.contains("↑ 50"),
            "beyond the scale, its value is written: {svg}"
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn degenerate_input_still_draws() {
        for pts in [
            vec![],
            vec![(5, 1.0)],
            vec![(5, f64::NAN), (6, f64::INFINITY)],
        ] {
            let svg = band(&pts, 0.0, 0.0, 3.0);
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
        let svg = band(&[], f64::NAN, f64::NAN, 3.0);
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn bars_are_clamped() {
        assert!(bar(2.0).contains("width=\"100.0\""));
        assert!(bar(-1.0).contains("width=\"0.0\""));
        assert!(bar(f64::NAN).contains("width=\"0.0\""));
        assert!(bar(0.25).contains("width=\"25.0\""));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(short(500_000.0), "500.0k");
        assert_eq!(short(12.0), "12");
        assert_eq!(short(1.234), "1.23");
        assert_eq!(short(2.5e9), "2.5G");
    }
}
