//! The navigation pane (`emdtui FILE --nav PATH`) and the inspector screen (`I`): state changes
//! through `update`, `TestBackend` snapshots at two sizes, and the real binary in tmux.

mod common;

use common::nion::{nion_metadata, npy_bytes, ramp, write_ndata};
use emdtui::format::synth::SynthSpec;
use emdtui::jobs::Progress;
use emdtui::tui::app::update;
use emdtui::tui::harness::Harness;
use emdtui::tui::images::{Graphics, ROI};
use emdtui::tui::keys::Action;
use emdtui::tui::view_state::inspector::Row;
use ratatui::crossterm::event::KeyCode;
use ratatui::style::Color;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SIZES: [(u16, u16); 2] = [(100, 30), (160, 48)];
const WAIT: Duration = Duration::from_secs(60);

/// `scan.mib` (16x24 positions of 256x256 frames, with a `.hdr`) and `nav.ndata` of `nav_shape`
/// written as Nion Swift writes it (0.25 nm per pixel, title "HAADF 1").
fn files(dir: &Path, nav_shape: (usize, usize)) -> (PathBuf, PathBuf) {
    let spec = SynthSpec { rows: 16, cols: 24, det: 256, depth: 12, hdr: true, ..Default::default() };
    let f = common::synth(dir, "scan.mib", &spec);
    let (r, c) = nav_shape;
    let (_, b) = ramp(r, c);
    let n = dir.join("nav.ndata");
    write_ndata(
        &n,
        &npy_bytes("<f4", &format!("({r}, {c})"), &b),
        Some(&nion_metadata(r, c)),
        zip::CompressionMethod::Deflated,
    );
    (f, n)
}

/// The viewer on `f` with the navigation image `nav` attached (as `--nav` does), drawn.
fn open_with_nav(f: &Path, nav: &Path, w: u16, hh: u16) -> Harness {
    let mut h = Harness::open(f, w, hh, Graphics::Halfblocks).unwrap();
    let sc = (h.state.ds.scan().rows, h.state.ds.scan().cols);
    emdtui::tui::nav::attach(&mut h.state, emdtui::ops::nav::load(nav, sc).unwrap());
    h.settle(WAIT);
    h.draw();
    h
}

/// Colours of the cells inside `r`.
fn has_colour(h: &Harness, r: ratatui::layout::Rect, c: [u8; 3]) -> bool {
    let want = Color::Rgb(c[0], c[1], c[2]);
    let buf = h.terminal.backend().buffer();
    (r.y..r.y + r.height).any(|y| (r.x..r.x + r.width).any(|x| buf[(x, y)].fg == want || buf[(x, y)].bg == want))
}

fn nav_cells(h: &Harness) -> ratatui::layout::Rect {
    h.state.nav.as_ref().unwrap().prepared.as_ref().expect("nav pane drawn").2.cells
}

#[test]
fn nav_pane_snapshots_cursor_roi_and_click() {
    let dir = tempfile::tempdir().unwrap();
    let (f, n) = files(dir.path(), (16, 24));
    for (w, hh) in SIZES {
        let mut h = open_with_nav(&f, &n, w, hh);
        let t = h.text();
        assert!(t.contains("HAADF 1 (8, 12)"), "{t}");
        assert!(
            w < 160 || t.contains("HAADF 1 (8, 12) = 102.0 "),
            "the ramp value under the cursor (8*24+12)*0.5:\n{t}"
        );
        assert!(t.contains("navigation image nav.ndata: 16 x 24 float32"), "{t}");
        assert!(t.contains(" nm"), "scale bar from the Nion calibration:\n{t}");
        assert_eq!(h.state.quant.calibration.r, Some((0.25, "nm".into())), "the scan takes the nav's step");
        insta::assert_snapshot!(format!("nav_{w}x{hh}"), t);
        let cells = nav_cells(&h);
        assert!(has_colour(&h, cells, emdtui::tui::images::CURSOR), "cursor drawn on the nav image");
        // keys move the cursor on both panes
        h.key(KeyCode::Right);
        h.draw();
        assert_eq!(h.state.main.cursor, (8, 13));
        assert!(h.text().contains("HAADF 1 (8, 13)"), "{}", h.text());
        // a ROI is drawn on the nav image too
        h.keys("r");
        h.key(KeyCode::Down);
        h.key(KeyCode::Down);
        h.keys("r");
        h.settle(WAIT);
        h.draw();
        assert!(has_colour(&h, nav_cells(&h), ROI), "ROI drawn on the nav image");
        // a click on the nav pane's top-left cell moves the cursor to the scan's corner
        update(&mut h.state, Action::ClickOverview(cells.x, cells.y));
        assert_eq!(h.state.main.cursor, (0, 0));
        // ... its last cell to the scan positions of the opposite corner that cell shows
        update(&mut h.state, Action::ClickOverview(cells.x + cells.width - 1, cells.y + cells.height - 1));
        let (r, c) = h.state.main.cursor;
        let (cr, cc) = (16usize.div_ceil(cells.height as usize), 24usize.div_ceil(cells.width as usize));
        assert!(r >= 16 - cr && c >= 24 - cc, "{:?} in a {cells:?} pane", (r, c));
        // a click outside it does nothing
        update(&mut h.state, Action::ClickOverview(0, 0));
        assert_eq!(h.state.main.cursor, (r, c));
    }
}

#[test]
fn nav_of_another_shape_says_so_and_the_viewer_works() {
    let dir = tempfile::tempdir().unwrap();
    let (f, n) = files(dir.path(), (10, 12));
    for (w, hh) in SIZES {
        let mut h = open_with_nav(&f, &n, w, hh);
        let t = h.text();
        assert!(t.contains("HAADF 1 10x12 ≠ scan 16x24") || (w < 160 && t.contains(" 10x12≠16x24 ")), "{t}");
        assert!(t.contains("nav.ndata: navigation image is 10x12 but the scan is"), "status names both:\n{t}");
        assert!(h.state.status.contains("navigation image is 10x12 but the scan is 16x24"), "{}", h.state.status);
        assert_eq!(h.state.quant.calibration.r, None, "no calibration from an image of another scan");
        insta::assert_snapshot!(format!("nav_mismatch_{w}x{hh}"), t);
        // the cursor still moves, drawn at the same fraction of the image
        h.key(KeyCode::Left);
        assert_eq!(h.state.main.cursor, (8, 11));
        let v = h.state.nav.as_ref().unwrap();
        assert_eq!(v.to_image(h.state.main.cursor, (16, 24)), (5, 5));
    }
}

#[test]
fn nav_pane_on_a_transposed_scan_hints_and_bad_files_are_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, n) = files(dir.path(), (24, 16));
    let e = emdtui::ops::nav::load(&n, (16, 24)).unwrap().mismatch.unwrap();
    assert!(e.contains("(transposed?)") && e.contains("nav.ndata"), "{e}");
    let bad = dir.path().join("bad.ndata");
    std::fs::write(&bad, b"PK\x03\x04 not really a zip").unwrap();
    let e = emdtui::ops::nav::load(&bad, (16, 24)).unwrap_err().to_string();
    assert!(e.contains("bad.ndata") && e.contains("zip"), "{e}");
}

/// Mask attribute values that change from run to run (UUID, creation time, fingerprints).
fn stable(t: &str) -> String {
    t.lines()
        .map(|l| {
            let vary = ["@UUID", "@emdtui_created", "fingerprint", "@emdtui_source =", "@emdtui_source_path"]
                .iter()
                .any(|k| l.contains(k));
            match l.find(" = ") {
                Some(i) if vary => {
                    let (a, b) = l.split_at(i + 3);
                    let end = b.rfind('│').unwrap_or(b.len());
                    let masked: String = b[..end].chars().map(|c| if c == ' ' { ' ' } else { '#' }).collect();
                    format!("{a}{masked}{}", &b[end..])
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn inspector_on_an_emd_scrolls_folds_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = files(dir.path(), (16, 24));
    let emd = dir.path().join("scan.emd");
    let ds = emdtui::dataset::open(&f, &Default::default()).unwrap();
    emdtui::ops::convert::convert(ds.as_ref(), &emd, &Default::default(), &Progress::new("c", 0)).unwrap();
    for (w, hh) in SIZES {
        let mut h = Harness::open(&emd, w, hh, Graphics::Halfblocks).unwrap();
        h.settle(WAIT);
        h.draw();
        h.keys("I");
        h.draw();
        let v = h.state.inspector.as_ref().expect("inspector open");
        let nodes = &v.inspection.tree.as_ref().unwrap().nodes;
        assert!(nodes.iter().any(|n| n.path == "/datacube_root/datacube/data"), "the datacube listed");
        assert_eq!(v.inspection.emd_caches.len(), 7, "the seven overview caches");
        assert!(v.inspection.emd_caches.iter().all(|c| c.valid));
        let t = h.text();
        assert!(t.contains("inspector: scan.emd"), "{t}");
        assert!(t.contains("@emd_group_type = file"), "root attributes:\n{t}");
        insta::assert_snapshot!(format!("inspector_emd_{w}x{hh}"), stable(&t));
        // End shows the caches section, with the seven caches valid
        h.key(KeyCode::End);
        h.draw();
        let t = h.text();
        assert!(t.contains("virtual_bf") && t.contains("valid"), "{t}");
        let rows = h.state.inspector.as_ref().unwrap().rows();
        assert_eq!(h.state.inspector.as_ref().unwrap().selected, rows.len() - 1);
        insta::assert_snapshot!(format!("inspector_emd_end_{w}x{hh}"), stable(&t));
        // Home, then fold the root: only it is left of the tree
        h.key(KeyCode::Home);
        assert_eq!(h.state.inspector.as_ref().unwrap().top, 0);
        h.key(KeyCode::Enter);
        let v = h.state.inspector.as_ref().unwrap();
        assert_eq!(v.rows().iter().filter(|r| matches!(r, Row::Node(_))).count(), 1, "root folded");
        h.draw();
        assert!(h.text().contains("▸ /"), "{}", h.text());
        h.key(KeyCode::Right);
        let n_all = h.state.inspector.as_ref().unwrap().rows().len();
        assert_eq!(n_all, rows.len(), "unfolded again");
        // PgDn moves by a page
        h.key(KeyCode::PageDown);
        let v = h.state.inspector.as_ref().unwrap();
        assert_eq!(v.selected, v.page, "one page down");
        assert!(v.top > 0, "scrolled");
        // Esc closes; the main screen is back
        h.key(KeyCode::Esc);
        assert!(h.state.inspector.is_none());
        h.draw();
        assert!(!h.text().contains("inspector:"), "{}", h.text());
    }
}

#[test]
fn inspector_folds_a_group_with_left_from_its_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = files(dir.path(), (16, 24));
    let emd = dir.path().join("scan.emd");
    let ds = emdtui::dataset::open(&f, &Default::default()).unwrap();
    emdtui::ops::convert::convert(ds.as_ref(), &emd, &Default::default(), &Progress::new("c", 0)).unwrap();
    let mut h = Harness::open(&emd, 100, 30, Graphics::Halfblocks).unwrap();
    update(&mut h.state, Action::Inspector);
    let before = h.state.inspector.as_ref().unwrap().rows().len();
    // row 1 is an attribute of the root: left folds the root
    update(&mut h.state, Action::InspectorMove(1));
    assert!(matches!(h.state.inspector.as_ref().unwrap().rows()[1], Row::Attr(0, _)));
    update(&mut h.state, Action::InspectorFold(1));
    let v = h.state.inspector.as_ref().unwrap();
    assert!(v.folded.contains(&0) && v.selected == 0 && v.rows().len() < before);
    // keys of other screens do nothing while it is open
    let cur = h.state.main.cursor;
    update(&mut h.state, Action::Move(0, 1));
    assert_eq!(h.state.main.cursor, cur);
    update(&mut h.state, Action::Inspector);
    assert!(h.state.inspector.is_none());
}

#[test]
fn inspector_on_a_mib_says_there_is_no_conversion_then_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = files(dir.path(), (16, 24));
    for (w, hh) in SIZES {
        let mut h = Harness::open(&f, w, hh, Graphics::Halfblocks).unwrap();
        h.settle(WAIT);
        h.keys("I");
        h.draw();
        let t = h.text();
        assert!(t.contains("no EMD conversion of this .mib (scan.emd not found"), "{t}");
        assert!(t.contains("cache directory entries of this .mib:"), "{t}");
        insta::assert_snapshot!(format!("inspector_mib_{w}x{hh}"), t);
    }
    // once converted, the inspector of the .mib shows its EMD
    let ds = emdtui::dataset::open(&f, &Default::default()).unwrap();
    emdtui::ops::convert::convert(
        ds.as_ref(),
        &dir.path().join("scan.emd"),
        &Default::default(),
        &Progress::new("c", 0),
    )
    .unwrap();
    let mut h = Harness::open(&f, 100, 30, Graphics::Halfblocks).unwrap();
    h.keys("I");
    let v = h.state.inspector.as_ref().unwrap();
    assert!(v.inspection.file.as_ref().unwrap().ends_with("scan.emd"));
    assert!(v.inspection.tree.as_ref().unwrap().nodes.len() > 10);
}

#[test]
fn inspector_lists_the_cache_directory_entries_of_a_mib() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (f, _) = files(dir.path(), (16, 24));
    let mut h = Harness::open_with_cache(&f, 160, 48, Graphics::Halfblocks, &cache).unwrap();
    h.settle(WAIT);
    assert!(h.state.main.overviews.as_ref().unwrap().complete);
    h.keys("I");
    h.draw();
    let v = h.state.inspector.as_ref().unwrap();
    assert!(!v.inspection.dir_caches.is_empty(), "the stored overview is listed");
    assert!(v.inspection.dir_caches.iter().all(|e| e.valid && e.kind == "overviews"), "{:?}", v.inspection.dir_caches);
    let t = h.text();
    assert!(t.contains("overviews") && t.contains("valid"), "{t}");
}

#[test]
fn tmux_viewer_with_nav_and_inspector() {
    if !common::tmux::have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (f, n) = files(dir.path(), (16, 24));
    let cache = dir.path().join("cache");
    let args = format!("'{}' --nav '{}' --graphics halfblocks", f.display(), n.display());
    let (t, t0) = common::tmux::Tmux::start("nav", &common::tmux::pane_cmd(&cache, &args));
    let limit = Duration::from_secs(60);
    t.wait("the nav pane", t0, limit, |s| s.contains("HAADF 1 (8, 12)"));
    t.send(&["Right"]);
    t.wait("the cursor moved on the nav pane", t0, limit, |s| s.contains("HAADF 1 (8, 13)"));
    t.send(&["I"]);
    let (s, _) = t.wait("the inspector", t0, limit, |s| s.contains("inspector: scan.mib"));
    assert!(s.contains("no EMD conversion of this .mib"), "{s}");
    t.send(&["Escape"]);
    t.wait("the inspector closed", t0, limit, |s| !s.contains("inspector: scan.mib") && s.contains("HAADF 1"));
    t.send(&["q"]);
    let (s, _) = t.wait("the exit", t0, limit, |s| common::tmux::exited(s).is_some());
    assert_eq!(common::tmux::exited(&s), Some("EXITED rc=0"), "{s}");
    // a broken navigation image: one error naming it, no panic, the terminal given back
    let bad = dir.path().join("broken.ndata");
    std::fs::write(&bad, b"PK\x03\x04 truncated").unwrap();
    let args = format!("'{}' --nav '{}' --graphics halfblocks", f.display(), bad.display());
    let (t, t0) = common::tmux::Tmux::start("navbad", &common::tmux::pane_cmd(&cache, &args));
    let (s, _) = t.wait("the exit", t0, limit, |s| common::tmux::exited(s).is_some());
    assert_eq!(common::tmux::exited(&s), Some("EXITED rc=1"), "{s}");
    assert!(s.contains("emdtui: error:") && s.contains("broken.ndata"), "{s}");
    assert!(!s.contains("panicked"), "{s}");
}
