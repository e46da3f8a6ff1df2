//! What the inspector screen keeps: the inspection of the open source, which objects are folded,
//! the selected row and the scroll position. The rows on screen follow from the folding
//! ([`InspectorView::rows`]); `tui::inspector` changes this state and draws it.

use crate::format::h5tree::NodeKind;
use crate::ops::inspect::Inspection;
use std::collections::BTreeSet;

/// One row of the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// A tree node (index into the tree's nodes).
    Node(usize),
    /// Attribute `j` of node `i`.
    Attr(usize, usize),
    /// Line `k` of the caches section (see [`InspectorView::cache_lines`]).
    Cache(usize),
}

/// The inspector's state.
pub struct InspectorView {
    pub inspection: Inspection,
    /// Folded nodes: their attributes and descendants hidden.
    pub folded: BTreeSet<usize>,
    /// The selected row (index into [`InspectorView::rows`]).
    pub selected: usize,
    /// The first row on screen.
    pub top: usize,
    /// Rows the listing had on screen at the last draw (the page for PgUp/PgDn).
    pub page: usize,
    /// The caches section as (text, valid?) lines: `None` for headings and notes.
    pub cache_lines: Vec<(String, Option<bool>)>,
}

impl InspectorView {
    pub fn new(inspection: Inspection, cache_lines: Vec<(String, Option<bool>)>) -> InspectorView {
        InspectorView { inspection, folded: BTreeSet::new(), selected: 0, top: 0, page: 20, cache_lines }
    }

    fn nodes(&self) -> &[crate::format::h5tree::Node] {
        self.inspection.tree.as_ref().map(|t| t.nodes.as_slice()).unwrap_or(&[])
    }

    /// The rows shown with the current folding: each node not inside a folded one, its
    /// attributes unless it is folded itself, then the caches section.
    pub fn rows(&self) -> Vec<Row> {
        let mut v = Vec::new();
        let mut hide_below: Option<usize> = None;
        for (i, n) in self.nodes().iter().enumerate() {
            match hide_below {
                Some(d) if n.depth > d => continue,
                _ => hide_below = None,
            }
            v.push(Row::Node(i));
            if self.folded.contains(&i) {
                hide_below = Some(n.depth);
            } else {
                v.extend((0..n.attrs.len()).map(|j| Row::Attr(i, j)));
            }
        }
        v.extend((0..self.cache_lines.len()).map(Row::Cache));
        v
    }

    /// Whether node `i` has anything to fold (attributes or children).
    pub fn foldable(&self, i: usize) -> bool {
        let n = self.nodes();
        n.get(i).is_some_and(|x| !x.attrs.is_empty() || n.get(i + 1).is_some_and(|y| y.depth > x.depth))
    }

    /// Whether node `i` is a group.
    pub fn is_group(&self, i: usize) -> bool {
        self.nodes().get(i).is_some_and(|n| n.kind == NodeKind::Group)
    }

    /// Move the selection by `d` rows (clamped), scrolling to keep it on screen.
    pub fn move_by(&mut self, d: i64) {
        let n = self.rows().len();
        self.selected = (self.selected as i64).saturating_add(d).clamp(0, n.saturating_sub(1) as i64) as usize;
        self.scroll_to_selected();
    }

    fn scroll_to_selected(&mut self) {
        let page = self.page.max(1);
        if self.selected < self.top {
            self.top = self.selected;
        } else if self.selected >= self.top + page {
            self.top = self.selected + 1 - page;
        }
    }

    /// The node of the selected row (an attribute's node).
    fn selected_node(&self) -> Option<usize> {
        match self.rows().get(self.selected)? {
            Row::Node(i) | Row::Attr(i, _) => Some(*i),
            Row::Cache(_) => None,
        }
    }

    /// Fold (`Some(true)`), unfold (`Some(false)`) or toggle (`None`) the selected node; folding
    /// from an attribute row, or a node with nothing to fold, folds its parent instead.
    pub fn fold(&mut self, want: Option<bool>) {
        let Some(mut i) = self.selected_node() else { return };
        let on_attr = matches!(self.rows().get(self.selected), Some(Row::Attr(..)));
        if want == Some(true) && (on_attr || !self.foldable(i) || self.folded.contains(&i)) {
            // go up to the parent group
            let depth = self.nodes()[i].depth;
            if let Some(p) = (0..i).rev().find(|&p| self.nodes()[p].depth < depth) {
                i = p;
            } else if on_attr {
                // the root's attribute: fold the root
            } else {
                return;
            }
        }
        if !self.foldable(i) {
            return;
        }
        let fold = want.unwrap_or(!self.folded.contains(&i));
        if fold {
            self.folded.insert(i);
        } else {
            self.folded.remove(&i);
        }
        // keep the folded node selected
        if let Some(r) = self.rows().iter().position(|r| *r == Row::Node(i)) {
            self.selected = r;
        }
        self.scroll_to_selected();
    }
}
