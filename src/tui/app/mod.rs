//! Application state and `update(&mut State, Action)`.
//!
//! [`State`] holds what belongs to the whole dataset (the file, the screen, the status line,
//! graphics, tuning, the event channel, the frame loader) and one part per area of the UI:
//! [`MainView`] (`s.main`: scan cursor, detector, overviews, diffraction pane, ROI),
//! [`FftView`] (`s.fft`: the FFT explorer), [`JobsPanel`] (`s.jobs`) and the [`Popup`]
//! (`s.popup`). [`update`] hands an action to the popup first, then to the view it concerns, then
//! to the actions shared by both screens. Background work (overview, ROI mean, conversion, FFT)
//! runs as jobs in the [`JobTable`] and reports back as [`AppEvent`]s on the one channel the main
//! loop reads; [`on_event`] applies them.
//!
//! One file each: [`state`] (the types and what the state answers about itself), [`open`]
//! (opening a dataset), [`update`](mod@update) (actions), [`events`] (background results and
//! input), [`jobs`] (starting background work) and [`export`] (the `e` key).
//!
//! [`JobTable`]: crate::jobs::JobTable

pub mod events;
pub mod export;
pub mod jobs;
pub mod open;
pub mod state;
pub mod update;

pub use events::on_event;
pub use state::{
    AppEvent, Confirm, FftView, JobsPanel, MainView, Options, Popup, Prepared, Screen, State, ViewLayout, kind_label,
};
pub use update::update;
