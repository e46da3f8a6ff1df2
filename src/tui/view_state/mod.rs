//! What each view keeps inside the UI state (`app::State` holds one of each); the views' code
//! (`tui::dpc`, `tui::eels`, `tui::tcbf`, `tui::custom`) works on these through the state.

pub mod detect;
pub mod dpc;
pub mod eels;
pub mod inspector;
pub mod nav;
pub mod ptycho;
pub mod tcbf;
