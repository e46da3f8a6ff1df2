//! The inspector screen (`I`): the HDF5 tree of the open file (or of the EMD a `.mib` was
//! converted to) with shapes, element types, chunking, filters, sizes and attributes, then
//! emdtui's caches with their provenance and validity. Scrolls and folds; Esc closes.

use super::app::State;
use super::keys::Action;
use super::render::block;
use super::view_state::inspector::{InspectorView, Row};
use crate::format::h5tree::{Node, NodeKind, bytes_text};
use crate::ops::inspect::Inspection;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

/// Open the inspector on the state's file (reads the tree now), or close it.
pub fn toggle(s: &mut State) {
    if s.inspector.take().is_some() {
        s.status.clear();
        return;
    }
    let i = crate::ops::inspect::inspect(s.ds.as_ref(), s.cache_dir.as_deref());
    let lines = cache_lines(&i, s.is_mib, s.deterministic);
    s.status = match (i.file.as_deref().map(file_name), &i.tree) {
        (Some(f), Some(t)) => format!("inspector: {f} ({} objects)", t.nodes.len()),
        (Some(f), None) => format!("inspector: {f} could not be read"),
        (None, _) => "inspector: this .mib has no EMD conversion".into(),
    };
    s.inspector = Some(InspectorView::new(i, lines));
}

/// An action while the inspector is open (all but quit): it moves, folds or closes it.
pub fn action(s: &mut State, a: Action) {
    let Some(v) = s.inspector.as_mut() else { return };
    match a {
        Action::InspectorMove(d) => v.move_by(d as i64),
        Action::InspectorPage(d) => v.move_by(d as i64 * v.page.max(1) as i64),
        Action::InspectorFold(d) => v.fold(match d {
            0 => None,
            d => Some(d > 0),
        }),
        Action::Inspector | Action::No | Action::ClearRoi => toggle(s),
        _ => {}
    }
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
}

fn when(unix_s: u64) -> String {
    if unix_s == 0 {
        return String::new();
    }
    let d = std::time::Duration::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|n| n.as_secs().saturating_sub(unix_s))
            .unwrap_or(0),
    );
    let h = d.as_secs() / 3600;
    if h >= 48 { format!(", {} days old", h / 24) } else { format!(", {h} h old") }
}

/// The caches section: emdtui's caches inside the file, then (for a `.mib`) its entries in the
/// cache directory, each with its provenance and whether it is valid for the file as it is now.
pub fn cache_lines(i: &Inspection, is_mib: bool, deterministic: bool) -> Vec<(String, Option<bool>)> {
    let mut v: Vec<(String, Option<bool>)> = Vec::new();
    match (&i.file, &i.error) {
        (None, _) => v.push((
            format!(
                "no EMD conversion of this .mib ({} not found; c converts it)",
                file_name(&crate::ops::convert::default_output(&i.source))
            ),
            None,
        )),
        (Some(_), Some(e)) => v.push((format!("cannot read it: {e}"), None)),
        (Some(_), None) => {}
    }
    if let Some(f) = &i.file {
        v.push((String::new(), None));
        v.push((format!("emdtui caches in {}:", file_name(f)), None));
        if i.emd_caches.is_empty() {
            v.push(("  none".into(), None));
        }
        for c in &i.emd_caches {
            let state = if c.valid { "valid".to_string() } else { format!("STALE: {}", c.reason) };
            let by = if deterministic { String::new() } else { format!("  (emdtui {} {})", c.version, c.created) };
            v.push((format!("  {:<14} {:<36} {state}{by}", c.name, c.path), Some(c.valid)));
        }
    }
    if is_mib {
        v.push((String::new(), None));
        v.push(("cache directory entries of this .mib:".into(), None));
        if i.dir_caches.is_empty() {
            v.push(("  none".into(), None));
        }
        for e in &i.dir_caches {
            let name = e.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let state = if e.valid { "valid" } else { "STALE: the file changed since" };
            let by = if deterministic {
                String::new()
            } else {
                format!("  (emdtui {}{})", e.tool_version, when(e.created_unix_s))
            };
            v.push((format!("  {:<12} {name}  {}  {state}{by}", e.kind, bytes_text(e.bytes)), Some(e.valid)));
        }
    }
    v
}

/// A node's line: groups with their fold mark, datasets with shape, type, chunks, filters, sizes.
fn node_line(n: &Node, folded: bool, foldable: bool) -> String {
    let indent = "  ".repeat(n.depth);
    match &n.kind {
        NodeKind::Group => {
            let mark = if !foldable {
                " "
            } else if folded {
                "▸"
            } else {
                "▾"
            };
            format!("{indent}{mark} {}/", if n.depth == 0 { "" } else { &n.name })
        }
        NodeKind::Dataset { shape, dtype, chunks, filters, storage_bytes, logical_bytes } => {
            let mark = if !foldable {
                " "
            } else if folded {
                "▸"
            } else {
                "▾"
            };
            let dims = shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("x");
            let ch = match chunks {
                Some(c) => format!("  chunks {}", c.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("x")),
                None => "  contiguous".into(),
            };
            let fl = if filters.is_empty() { String::new() } else { format!("  [{}]", filters.join(", ")) };
            format!(
                "{indent}{mark} {}  {dims} {dtype}{ch}{fl}  {} on disk ({})",
                n.name,
                bytes_text(*storage_bytes),
                bytes_text(*logical_bytes)
            )
        }
    }
}

/// The inspector's area: everything between the title line and the footer.
pub fn area(full: Rect) -> Rect {
    Rect { y: full.y + 1.min(full.height), height: full.height.saturating_sub(2), ..full }
}

/// Rows of the listing that fit `full` (for paging; set before each draw).
pub fn page(full: Rect) -> usize {
    area(full).height.saturating_sub(2).max(1) as usize
}

fn row_line(v: &InspectorView, r: Row) -> Line<'static> {
    let nodes = v.inspection.tree.as_ref().map(|t| t.nodes.as_slice()).unwrap_or(&[]);
    match r {
        Row::Node(i) => {
            let n = &nodes[i];
            let style = match n.kind {
                NodeKind::Group => Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                NodeKind::Dataset { .. } => Style::default().fg(Color::Cyan),
            };
            Line::from(Span::styled(node_line(n, v.folded.contains(&i), v.foldable(i)), style))
        }
        Row::Attr(i, j) => {
            let (n, a) = (&nodes[i], &nodes[i].attrs[j]);
            Line::from(vec![
                Span::raw("  ".repeat(n.depth + 1)),
                Span::styled(format!("@{}", a.name), Style::default().fg(Color::Gray)),
                Span::raw(format!(" = {}", a.value)),
            ])
        }
        Row::Cache(k) => {
            let (t, ok) = &v.cache_lines[k];
            let style = match ok {
                Some(true) => Style::default().fg(Color::Green),
                Some(false) => Style::default().fg(Color::Red),
                None => Style::default().add_modifier(Modifier::BOLD),
            };
            Line::from(Span::styled(t.clone(), style))
        }
    }
}

/// Draw the inspector over the screen (pure).
pub fn render(s: &State, v: &InspectorView, f: &mut Frame, full: Rect) {
    let r = area(full);
    let rows = v.rows();
    let n = page(full);
    let top = v.top.min(rows.len().saturating_sub(1));
    let lines: Vec<Line> = rows
        .iter()
        .enumerate()
        .skip(top)
        .take(n)
        .map(|(k, row)| {
            let l = row_line(v, *row);
            if k == v.selected { l.style(Style::default().add_modifier(Modifier::REVERSED)) } else { l }
        })
        .collect();
    let name = v.inspection.file.as_ref().unwrap_or(&s.path);
    let name = name.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let end = (top + n).min(rows.len());
    let b = block(format!(" inspector: {name} ")).title_bottom(Line::from(format!(
        " rows {}-{end} of {}  ↑↓ PgUp PgDn Home End · Enter/space/←→ fold · Esc close ",
        (top + 1).min(end),
        rows.len()
    )));
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(b), r);
}
