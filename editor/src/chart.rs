//! A bar chart drawn with egui painter shapes: one bar per labelled value, the value printed on
//! top of the bar and the label under it, bars growing up from zero (down for negative values).

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Ui, Vec2};

/// Height of the bar area, in points.
const PLOT_HEIGHT: f32 = 140.0;
/// Narrowest bar slot, in points (a slot widens to fit its label).
const MIN_SLOT: f32 = 44.0;
/// Room for the value above and the label below the bars, in points.
const TEXT_BAND: f32 = 18.0;
/// Bar colour.
const BAR: Color32 = Color32::from_rgb(90, 140, 220);

/// Formats a number for display: integers as such, other values with four decimals, very large
/// or small ones in scientific notation.
pub fn short_number(v: f64) -> String {
    if !v.is_finite() {
        format!("{v}")
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 1e6 || v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// Draws a bar chart of `bars` (label, value). Non-finite values get no bar. Hovering a bar
/// shows its full label and value.
pub fn bar_chart(ui: &mut Ui, bars: &[(String, f64)]) {
    let font = FontId::proportional(11.0);
    let text = ui.visuals().text_color();
    let labels: Vec<_> = bars
        .iter()
        .map(|(l, _)| ui.painter().layout_no_wrap(l.clone(), font.clone(), text))
        .collect();
    let slots: Vec<f32> = labels
        .iter()
        .map(|g| (g.size().x + 8.0).max(MIN_SLOT))
        .collect();
    let width = slots.iter().sum::<f32>().max(MIN_SLOT);
    let (rect, response) = ui.allocate_exact_size(
        Vec2::new(width, PLOT_HEIGHT + 2.0 * TEXT_BAND),
        Sense::hover(),
    );
    let plot = Rect::from_min_max(
        rect.min + Vec2::new(0.0, TEXT_BAND),
        rect.max - Vec2::new(0.0, TEXT_BAND),
    );
    let finite = bars.iter().map(|b| b.1).filter(|v| v.is_finite());
    let lo = finite.clone().fold(0f64, f64::min);
    let hi = finite.fold(0f64, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let y_of = |v: f64| plot.bottom() - ((v - lo) / span) as f32 * plot.height();
    let painter = ui.painter_at(rect);
    let zero = y_of(0.0);
    let mut x = rect.left();
    let mut hovered = None;
    for (i, ((label, value), galley)) in bars.iter().zip(labels).enumerate() {
        let slot = Rect::from_x_y_ranges(x..=x + slots[i], rect.y_range());
        x += slots[i];
        let cx = slot.center().x;
        if value.is_finite() {
            let top = y_of(*value);
            let bar = Rect::from_x_y_ranges(cx - 14.0..=cx + 14.0, top.min(zero)..=top.max(zero));
            painter.rect_filled(bar, 2.0, BAR);
        }
        let value_y = if *value < 0.0 { zero } else { y_of(*value) };
        painter.text(
            Pos2::new(cx, value_y.clamp(plot.top(), plot.bottom()) - 2.0),
            Align2::CENTER_BOTTOM,
            short_number(*value),
            font.clone(),
            text,
        );
        painter.galley(
            Pos2::new(cx - galley.size().x / 2.0, plot.bottom() + 3.0),
            galley,
            text,
        );
        if response.hover_pos().is_some_and(|p| slot.contains(p)) {
            hovered = Some(format!("{label}: {value}"));
        }
    }
    painter.hline(
        rect.x_range(),
        zero,
        Stroke::new(1.0, ui.visuals().weak_text_color()),
    );
    if let Some(tip) = hovered {
        response.on_hover_text(tip);
    }
}

#[cfg(test)]
mod tests {
    use super::short_number;

    #[test]
    fn numbers_are_short() {
        assert_eq!(short_number(22.0), "22");
        assert_eq!(short_number(-3.0), "-3");
        assert_eq!(short_number(31.234567), "31.2346");
        assert_eq!(short_number(0.0001234), "1.234e-4");
        assert_eq!(short_number(f64::NAN), "NaN");
    }
}
