//! Charts as SVG, drawn on the server: no script, nothing inline but presentation attributes
//! (allowed by the pages' policy), a `<title>` and `<desc>` for screen readers, and the numbers
//! next to each chart as text.

use std::fmt::Write as _;

use crate::notifications::render::escape_html as esc;

const W: f64 = 640.0;
const H: f64 = 200.0;
const PAD: f64 = 36.0;

/// A step line of a running total over time (`points`: x in seconds from the first point,
/// y the total), with `max` marked as a dashed line (capacity). Empty: a flat axis.
pub fn running_total(title: &str, points: &[(f64, f64)], max: f64) -> String {
    let x_end = points.last().map_or(1.0, |p| p.0).max(1.0);
    let y_top = points.iter().map(|p| p.1).fold(max, f64::max).max(1.0);
    let x = |v: f64| PAD + v / x_end * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD + -(v / y_top) * (H - 2.0 * PAD);
    let mut path = String::new();
    let mut last = 0.0;
    for (i, (px, py)) in points.iter().enumerate() {
        if i == 0 {
            let _ = write!(path, "M{:.1},{:.1}", x(*px), y(0.0));
        } else {
            let _ = write!(path, " H{:.1}", x(*px));
        }
        let _ = write!(path, " V{:.1}", y(*py));
        last = *py;
    }
    let desc = format!("{} of {} at the end", last, max);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"c-t c-d\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"c-t\">{t}</title><desc id=\"c-d\">{d}</desc>\
         <line x1=\"{PAD}\" y1=\"{b:.1}\" x2=\"{r:.1}\" y2=\"{b:.1}\" stroke=\"#4a4a4a\"/>\
         <line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b:.1}\" stroke=\"#4a4a4a\"/>",
        t = esc(title),
        d = esc(&desc),
        b = H - PAD,
        r = W - PAD,
    );
    if max > 0.0 {
        let _ = write!(
            svg,
            "<line x1=\"{PAD}\" y1=\"{c:.1}\" x2=\"{r:.1}\" y2=\"{c:.1}\" stroke=\"#a50e0e\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{r:.1}\" y=\"{ty:.1}\" text-anchor=\"end\" font-size=\"12\" fill=\"#a50e0e\">{m}</text>",
            c = y(max),
            r = W - PAD,
            ty = y(max) - 4.0,
            m = max,
        );
    }
    if !path.is_empty() {
        let _ = write!(
            svg,
            "<path d=\"{path}\" fill=\"none\" stroke=\"#0b57d0\" stroke-width=\"2.5\"/>"
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{PAD}\" y=\"{ty:.1}\" font-size=\"12\" fill=\"#1a1a1a\">0</text></svg>",
        ty = H - PAD + 16.0
    );
    svg
}

/// Horizontal bars (`label`, value) against `max`, each labelled with its value.
pub fn bars(title: &str, rows: &[(String, f64)], max: f64) -> String {
    let row_h = 28.0;
    let h = row_h * rows.len().max(1) as f64 + 8.0;
    let label_w = 170.0;
    let max = rows.iter().map(|r| r.1).fold(max, f64::max).max(1.0);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {h}\" role=\"img\" aria-labelledby=\"b-t\" xmlns=\"http://www.w3.org/2000/svg\"><title id=\"b-t\">{}</title>",
        esc(title)
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let top = 4.0 + i as f64 * row_h;
        let w = v / max * (W - label_w - 60.0);
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{ty:.1}\" font-size=\"13\" fill=\"#1a1a1a\">{l}</text>\
             <rect x=\"{label_w}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{bh:.1}\" fill=\"#0b57d0\"/>\
             <text x=\"{vx:.1}\" y=\"{ty:.1}\" font-size=\"13\" fill=\"#1a1a1a\">{v}</text>",
            ty = top + 16.0,
            l = esc(label),
            bh = row_h - 10.0,
            vx = label_w + w + 6.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_total_steps_up_to_its_last_value_and_marks_the_capacity() {
        let svg = running_total(
            "Seats <sold>",
            &[(0.0, 2.0), (60.0, 5.0), (120.0, 9.0)],
            10.0,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(
            svg.contains("<title id=\"c-t\">Seats &lt;sold&gt;</title>"),
            "escaped"
        );
        assert!(svg.contains("9 of 10 at the end"));
        assert!(svg.contains("stroke-dasharray"), "capacity line");
        assert_eq!(svg.matches(" V").count(), 3, "one step per point");
        assert!(
            !svg.contains("style="),
            "no inline style (the policy forbids it)"
        );
    }

    #[test]
    fn bars_scale_to_the_largest_and_show_their_values() {
        let svg = bars("Holds", &[("open".into(), 5.0), ("paid".into(), 10.0)], 0.0);
        assert!(svg.contains(">open<") && svg.contains(">10<"));
        assert!(
            svg.contains(&format!("width=\"{:.1}\"", W - 170.0 - 60.0)),
            "{svg}"
        );
        assert_eq!(running_total("empty", &[], 0.0).matches("<path").count(), 0);
    }
}
