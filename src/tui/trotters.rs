//! The FFT explorer's trotter overlay (`o` shows or hides it): where the SSB result of the
//! ptychography view (`P`; computed in this session or stored in the EMD) puts the trotters of
//! the Q under the cursor. Over |G| and arg G on the detector: the bright-field disk (yellow) and
//! its copies shifted by +Q and -Q (cyan); the lens-shaped regions inside the disk and one copy are
//! the trotters SSB sums. Over the Q-space power: the band |Q| = 2 alpha / lambda (cyan) outside
//! which no Q has a trotter. The normal (Q) view only.

use super::app::State;
use super::images::{self, Mapping, Raster};
use crate::compute::ssb::overlay::TrotterOverlay;
use crate::compute::tcbf::KGeometry;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

/// The overlay for the cursor's Q, when it is on and there is a result for this scan.
pub fn overlay(s: &State) -> Option<TrotterOverlay> {
    let st = &s.fft;
    if !st.trotters || st.reverse {
        return None;
    }
    let src = st.source.as_ref()?;
    let r = s.ptycho.shown()?;
    let (origin, bin) = src.k_origin_bin();
    TrotterOverlay::new(&r.result, KGeometry { det: s.ds.det(), origin, bin }, src.shape(), st.q)
}

/// The disk and its +-Q copies, on a detector (K) image.
pub fn draw_disks(r: &mut Raster, m: &Mapping, o: &TrotterOverlay) {
    let c = (o.centre.0 as f32, o.centre.1 as f32);
    let (sy, sx) = (o.shift.0 as f32, o.shift.1 as f32);
    let rad = o.radius as f32;
    images::draw_circle(r, m, (c.0 + sy, c.1 + sx), rad, images::TROTTER_COPY);
    images::draw_circle(r, m, (c.0 - sy, c.1 - sx), rad, images::TROTTER_COPY);
    images::draw_circle(r, m, c, rad, images::TROTTER_DISK);
}

/// The |Q| = 2a band, on the Q-space power of `(qr, qc)` Q pixels.
pub fn draw_band(r: &mut Raster, m: &Mapping, o: &TrotterOverlay, (qr, qc): (usize, usize)) {
    let c = ((qr / 2) as f32, (qc / 2) as f32);
    images::draw_ellipse(r, m, c, (o.band.0 as f32, o.band.1 as f32), images::TROTTER_COPY);
}

/// The explorer's line about the overlay: what is drawn, or why nothing is.
pub fn info(s: &State) -> Option<Line<'static>> {
    let st = &s.fft;
    if !st.trotters || st.reverse {
        return None;
    }
    let dim = Style::default().fg(Color::DarkGray);
    let Some(r) = s.ptycho.shown() else {
        return Some(Line::from(Span::styled(
            "trotters: no SSB result yet (P on the main screen computes it; o hides this)",
            dim,
        )));
    };
    let (Some(o), Some(src)) = (overlay(s), st.source.as_ref()) else {
        return Some(Line::from(Span::styled("trotters: the SSB result is of another scan shape", dim)));
    };
    let [qr, qc, _, _] = src.shape();
    let sm = &r.result.summary;
    let band = if band_visible(&o, (qr, qc)) {
        "±Q copies, |Q| < 2α/λ band"
    } else {
        "±Q copies (2α/λ is beyond the scan's Nyquist: every Q on the axes has trotters)"
    };
    Some(Line::from(vec![
        Span::styled("trotters", Style::default().fg(Color::Rgb(255, 220, 60))),
        Span::raw(format!(
            " of the SSB at {} (rotation {:.1}°, flip {}): disk, ",
            super::ptycho::nm(r.defocus_a()),
            sm.rotation_deg,
            if sm.flip { "yes" } else { "no" }
        )),
        Span::styled(band, Style::default().fg(Color::Rgb(80, 220, 255))),
    ]))
}

/// Whether the band |Q| = 2a crosses an axis of the `(qr, qc)` Q map (else it lies outside
/// along both axes and is not drawn there).
pub fn band_visible(o: &TrotterOverlay, (qr, qc): (usize, usize)) -> bool {
    o.band.0 < (qr / 2) as f64 || o.band.1 < (qc / 2) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raster(n: usize) -> (Raster, Mapping) {
        (Raster { w: n, h: n, px: vec![[0; 3]; n * n] }, Mapping { sw: n, sh: n, w: n, h: n })
    }

    fn at(r: &Raster, c: [u8; 3]) -> Vec<(usize, usize)> {
        (0..r.h).flat_map(|y| (0..r.w).map(move |x| (y, x))).filter(|&(y, x)| r.get(x, y) == c).collect()
    }

    #[test]
    fn the_band_is_an_ellipse_about_the_q_centre_and_the_copies_sit_at_plus_minus_q() {
        let o = TrotterOverlay { centre: (20.0, 20.0), radius: 6.0, shift: (0.0, 4.0), band: (10.0, 5.0) };
        let (mut r, m) = raster(48);
        draw_band(&mut r, &m, &o, (48, 48));
        let px = at(&r, images::TROTTER_COPY);
        assert!(!px.is_empty());
        for (y, x) in px {
            // pixel centres on the ellipse (rows 10, cols 5) around (24, 24), within a pixel
            let e = ((y as f64 + 0.5 - 24.5) / 10.0).hypot((x as f64 + 0.5 - 24.5) / 5.0);
            assert!((e - 1.0).abs() < 0.2, "({y}, {x}) off the ellipse: {e}");
        }
        assert!(band_visible(&o, (48, 48)) && !band_visible(&o, (16, 8)));
        let (mut r, m) = raster(48);
        draw_disks(&mut r, &m, &o);
        let disk = at(&r, images::TROTTER_DISK);
        let copies = at(&r, images::TROTTER_COPY);
        // the disk's leftmost and rightmost columns: 14 and 26; the copies reach 10 and 30
        let cols = |v: &[(usize, usize)]| (v.iter().map(|p| p.1).min().unwrap(), v.iter().map(|p| p.1).max().unwrap());
        assert_eq!(cols(&disk), (14, 26));
        assert_eq!(cols(&copies), (10, 30));
    }
}
