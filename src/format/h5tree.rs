//! The tree of any HDF5 file (an EMD, a py4DSTEM file, a Nion `.h5`): groups and datasets with
//! shape, element type, chunking, filters, bytes on disk and attributes, for the inspector and
//! `emdtui info FILE --tree`. Bounded: at most [`MAX_NODES`] objects and [`MAX_ATTR_TEXT`]
//! characters per attribute value are listed, and the listing says when it was cut.

use crate::error::Result;
use crate::format::h5;
use serde::Serialize;
use std::path::Path;

pub const MAX_NODES: usize = 20_000;
pub const MAX_ATTR_TEXT: usize = 200;

/// One attribute: its name and value as short text.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attr {
    pub name: String,
    pub value: String,
}

/// What a node is.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NodeKind {
    Group,
    Dataset {
        shape: Vec<usize>,
        dtype: String,
        /// Chunk shape (`None`: contiguous or compact).
        chunks: Option<Vec<usize>>,
        /// Filter names with their parameters, e.g. `deflate(4)`, `shuffle`.
        filters: Vec<String>,
        /// Bytes the data take in the file.
        storage_bytes: u64,
        /// Bytes of the data in memory (elements x element size).
        logical_bytes: u64,
    },
}

/// One object of the tree, in depth-first order; `depth` 0 is the root group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    pub path: String,
    pub name: String,
    pub depth: usize,
    #[serde(flatten)]
    pub kind: NodeKind,
    pub attrs: Vec<Attr>,
}

/// The whole listing.
#[derive(Debug, Clone, Serialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// True when [`MAX_NODES`] was reached and the rest not listed.
    pub truncated: bool,
}

fn short(mut s: String) -> String {
    if s.chars().count() > MAX_ATTR_TEXT {
        s = s.chars().take(MAX_ATTR_TEXT).collect::<String>() + "…";
    }
    s
}

/// An attribute's value as text: strings as they are, numbers and small arrays as numbers.
fn attr_text(a: &hdf5::Attribute) -> String {
    use hdf5::types::TypeDescriptor as T;
    let Ok(t) = a.dtype().and_then(|t| t.to_descriptor()) else { return "?".into() };
    let n = a.size();
    let text = match t {
        T::VarLenUnicode | T::VarLenAscii | T::FixedAscii(_) | T::FixedUnicode(_) if a.is_scalar() => {
            let parent_str = a.read_scalar::<hdf5::types::VarLenUnicode>().map(|v| v.as_str().to_string());
            parent_str
                .or_else(|_| a.read_scalar::<hdf5::types::VarLenAscii>().map(|v| v.as_str().to_string()))
                .or_else(|_| a.read_scalar::<hdf5::types::FixedAscii<1024>>().map(|v| v.as_str().to_string()))
                .or_else(|_| a.read_scalar::<hdf5::types::FixedUnicode<1024>>().map(|v| v.as_str().to_string()))
                .unwrap_or_else(|_| "<string>".into())
        }
        T::Integer(_) | T::Unsigned(_) | T::Float(_) | T::Boolean if n <= 16 => match a.read_raw::<f64>() {
            Ok(v) if a.is_scalar() => fmt_num(v[0]),
            Ok(v) => format!("[{}]", v.iter().map(|x| fmt_num(*x)).collect::<Vec<_>>().join(", ")),
            Err(_) => "?".into(),
        },
        t => format!("<{} x {t}>", n),
    };
    short(text)
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x}") }
}

fn attrs_of(loc: &hdf5::Location) -> Vec<Attr> {
    let mut names = loc.attr_names().unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let value = loc.attr(&name).map(|a| attr_text(&a)).unwrap_or_else(|_| "?".into());
            Attr { name, value }
        })
        .collect()
}

fn filter_text(f: &hdf5::filters::Filter) -> String {
    use hdf5::filters::Filter as F;
    match f {
        F::Deflate(l) => format!("deflate({l})"),
        F::Shuffle => "shuffle".into(),
        F::Fletcher32 => "fletcher32".into(),
        F::SZip(..) => "szip".into(),
        F::NBit => "nbit".into(),
        F::ScaleOffset(_) => "scaleoffset".into(),
        F::User(id, _) if *id == 32008 => "bitshuffle+lz4".into(),
        F::User(id, _) if *id == 32004 => "lz4".into(),
        F::User(id, _) => format!("filter {id}"),
        #[allow(unreachable_patterns)]
        _ => format!("{f:?}"),
    }
}

fn dataset_kind(d: &hdf5::Dataset) -> NodeKind {
    let shape = d.shape();
    let dtype = d.dtype().and_then(|t| t.to_descriptor()).map(|t| t.to_string()).unwrap_or_else(|_| "?".into());
    let elem = d.dtype().map(|t| t.size() as u64).unwrap_or(0);
    NodeKind::Dataset {
        logical_bytes: shape.iter().map(|&s| s as u64).product::<u64>() * elem,
        shape,
        dtype,
        chunks: d.chunk(),
        filters: d.filters().iter().map(filter_text).collect(),
        storage_bytes: d.storage_size(),
    }
}

fn walk(g: &hdf5::Group, path: &str, depth: usize, t: &mut Tree) {
    let mut names = g.member_names().unwrap_or_default();
    names.sort();
    for name in names {
        if t.nodes.len() >= MAX_NODES {
            t.truncated = true;
            return;
        }
        let child = if path == "/" { format!("/{name}") } else { format!("{path}/{name}") };
        if let Ok(sub) = g.group(&name) {
            t.nodes.push(Node { path: child.clone(), name, depth, kind: NodeKind::Group, attrs: attrs_of(&sub) });
            walk(&sub, &child, depth + 1, t);
        } else if let Ok(d) = g.dataset(&name) {
            t.nodes.push(Node { path: child, name, depth, kind: dataset_kind(&d), attrs: attrs_of(&d) });
        }
    }
}

/// The tree of the HDF5 file at `path`, root group first.
pub fn read(path: &Path) -> Result<Tree> {
    let f = h5::open_ro(path)?;
    let root = f.as_group().map_err(h5::err(path))?;
    let mut t = Tree { nodes: Vec::new(), truncated: false };
    t.nodes.push(Node { path: "/".into(), name: "/".into(), depth: 0, kind: NodeKind::Group, attrs: attrs_of(&root) });
    walk(&root, "/", 1, &mut t);
    Ok(t)
}

/// Human-readable bytes (KiB, MiB, ...).
pub fn bytes_text(b: u64) -> String {
    humansize::format_size(b, humansize::BINARY)
}

/// One line per node, indented by depth, with the dataset facts; attributes below when `attrs`.
pub fn render_text(t: &Tree, attrs: bool) -> String {
    let mut out = String::new();
    for n in &t.nodes {
        let indent = "  ".repeat(n.depth);
        match &n.kind {
            NodeKind::Group => out.push_str(&format!("{indent}{}/\n", if n.depth == 0 { "" } else { &n.name })),
            NodeKind::Dataset { shape, dtype, chunks, filters, storage_bytes, logical_bytes } => {
                let dims = shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("x");
                let ch = chunks
                    .as_ref()
                    .map(|c| format!(" chunks {}", c.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("x")));
                let fl = if filters.is_empty() { String::new() } else { format!(" [{}]", filters.join(", ")) };
                out.push_str(&format!(
                    "{indent}{}  {dims} {dtype}{}{fl}  {} on disk ({} data)\n",
                    n.name,
                    ch.unwrap_or_default(),
                    bytes_text(*storage_bytes),
                    bytes_text(*logical_bytes)
                ));
            }
        }
        if attrs {
            for a in &n.attrs {
                out.push_str(&format!("{indent}  @{} = {}\n", a.name, a.value));
            }
        }
    }
    if t.truncated {
        out.push_str(&format!("... (listing stopped at {MAX_NODES} objects)\n"));
    }
    out
}
