//! THE key table: every binding with its action and description. It dispatches keys, feeds the
//! footer, and generates the help popup, so the three can never disagree.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Everything a key (or a mouse click) can ask the app to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Move(i32, i32),
    MoveDetector(i32, i32),
    /// Change the active radius (BF radius in BF/sum/CoM modes, ADF outer in ADF mode).
    Radius(i32),
    /// Change the inner radius (ADF inner).
    InnerRadius(i32),
    CycleDetector,
    CycleScale,
    CycleColormap,
    Roi,
    ClearRoi,
    Convert,
    Fft,
    CancelJob,
    SelectJob(i32),
    SwitchScreen,
    Export,
    Help,
    Quit,
    Yes,
    No,
    /// FFT explorer: change the Q (or K) averaging region.
    FftRegion(i32),
    /// FFT explorer: toggle between the Q view and the reverse (K) view.
    FftReverse,
    /// FFT explorer: show or hide the trotter overlay of the SSB result.
    FftTrotters,
    /// Follow a running acquisition: the cursor tracks the newest frame (toggle).
    Follow,
    /// Main screen: one virtual image + frame, or three virtual images + frame.
    CycleLayout,
    /// Percentile clipping of the displayed images: 0.5-99.5, 0.1-99.9, 1-99 %, min-max.
    CycleClip,
    /// Main screen: the diffractogram (FFT) of the current virtual image instead of the frame:
    /// |F|^0.5, log |F|, off.
    Diffractogram,
    /// Main screen: custom detector in the first image pane: off, point, rectangle, mask from
    /// the pattern, BF disk, ADF annulus.
    CycleCustom,
    /// Custom detector response: sum / maximum.
    CustomResponse,
    /// The frame pane shows the EWPC of its pattern (toggle).
    Ewpc,
    ClickOverview(u16, u16),
    /// Main screen: the DPC view (iCoM + CoM colour wheel) on / off.
    DpcView,
    /// DPC view: turn the rotation by this many degrees (then fixed, with the flip).
    DpcRotate(i32),
    /// DPC view: mirror (flip) the detector x axis.
    DpcFlip,
    /// DPC view: back to the rotation and flip found from the curl.
    DpcAuto,
    /// Main screen: the tcBF view (super-resolved BF, plain BF, shift field) on / off.
    TcbfView,
    /// tcBF view: next upsample factor (1, 2, 4).
    TcbfUpsample,
    /// Main screen: the ptychography view (SSB phase, iCoM, BF) on / off.
    PtychoView,
    /// Ptychography: change the defocus corrected by this many Å (then recompute).
    PtychoDefocus(i32),
    /// Ptychography: back to defocus 0 (in focus).
    PtychoDefocusZero,
    /// Ptychography: the defocus of the tcBF fit of this session.
    PtychoDefocusTcbf,
    /// DPC view: open the prompt to type the rotation in degrees.
    DpcTypeRotation,
    /// A text prompt: this character typed (digits, minus, dot).
    PromptChar(char),
    /// A text prompt: delete the last character.
    PromptBack,
    /// EELS: move the energy window by steps of 1/128 of the spectrum.
    EelsMove(i32),
    /// EELS: move the energy window by its own width.
    EelsPage(i32),
    /// EELS: widen / narrow the energy window (its upper edge, by steps).
    EelsWidth(i32),
    /// EELS: log / linear spectrum plot.
    EelsLog,
    /// The inspector screen (HDF5 tree and caches of the open file) on / off.
    Inspector,
    /// Inspector: move the selection by rows.
    InspectorMove(i32),
    /// Inspector: move the selection by pages.
    InspectorPage(i32),
    /// Inspector: fold (1), unfold (-1) or toggle (0) the selected object.
    InspectorFold(i32),
}

impl Action {
    /// Actions that only mean something for diffraction data (virtual detectors, the
    /// diffraction frame, the 4D FFT): not offered on the EELS screen.
    pub fn diffraction_only(self) -> bool {
        matches!(
            self,
            Action::MoveDetector(..)
                | Action::CycleScale
                | Action::Radius(_)
                | Action::InnerRadius(_)
                | Action::CycleDetector
                | Action::CycleLayout
                | Action::Diffractogram
                | Action::Fft
                | Action::SwitchScreen
                | Action::FftRegion(_)
                | Action::FftReverse
                | Action::FftTrotters
                | Action::CycleCustom
                | Action::CustomResponse
                | Action::Ewpc
                | Action::DpcView
                | Action::DpcRotate(_)
                | Action::DpcFlip
                | Action::DpcAuto
                | Action::TcbfView
                | Action::TcbfUpsample
                | Action::PtychoView
                | Action::PtychoDefocus(_)
                | Action::PtychoDefocusZero
                | Action::PtychoDefocusTcbf
                | Action::DpcTypeRotation
        )
    }
}

/// Which screen a binding applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Main,
    Fft,
    /// The main screen of spectrum data (EELS).
    Eels,
}

/// Where the keys are pressed: the main screen of diffraction data, the FFT explorer, or the
/// EELS screen (the main screen of spectrum data: the main screen's keys without the
/// diffraction-only ones, plus the EELS keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Main,
    Fft,
    Eels,
}

impl Context {
    /// Whether binding `b` is active here.
    pub fn offers(self, b: &Binding) -> bool {
        let scoped = match b.scope {
            Scope::Global => true,
            Scope::Main => self != Context::Fft,
            Scope::Fft => self == Context::Fft,
            Scope::Eels => self == Context::Eels,
        };
        scoped && !(self == Context::Eels && b.action.diffraction_only())
    }
}

pub struct Binding {
    pub keys: &'static [(KeyCode, KeyModifiers)],
    /// How the keys are shown in help and the footer.
    pub label: &'static str,
    pub action: Action,
    pub scope: Scope,
    pub desc: &'static str,
    /// Shown in the footer (short form).
    pub footer: Option<&'static str>,
}

const N: KeyModifiers = KeyModifiers::NONE;
const S: KeyModifiers = KeyModifiers::SHIFT;

macro_rules! b {
    ($keys:expr, $label:expr, $action:expr, $scope:expr, $desc:expr, $footer:expr) => {
        Binding { keys: $keys, label: $label, action: $action, scope: $scope, desc: $desc, footer: $footer }
    };
}

use KeyCode::*;
pub static KEYS: &[Binding] = &[
    b!(
        &[(Left, N), (Char('h'), N)],
        "arrows/hjkl",
        Action::Move(0, -1),
        Scope::Global,
        "move the scan position (FFT: the Q or K cursor)",
        Some("move")
    ),
    b!(&[(Right, N), (Char('l'), N)], "", Action::Move(0, 1), Scope::Global, "", None),
    b!(&[(Up, N), (Char('k'), N)], "", Action::Move(-1, 0), Scope::Global, "", None),
    b!(&[(Down, N), (Char('j'), N)], "", Action::Move(1, 0), Scope::Global, "", None),
    b!(
        &[(Left, S), (Char('H'), S), (Char('H'), N)],
        "Shift+arrows, HJKL",
        Action::Move(0, -10),
        Scope::Global,
        "move by 10",
        None
    ),
    b!(&[(Right, S), (Char('L'), S), (Char('L'), N)], "", Action::Move(0, 10), Scope::Global, "", None),
    b!(&[(Up, S), (Char('K'), S), (Char('K'), N)], "", Action::Move(-10, 0), Scope::Global, "", None),
    b!(&[(Down, S), (Char('J'), S), (Char('J'), N)], "", Action::Move(10, 0), Scope::Global, "", None),
    b!(
        &[(Char('w'), N)],
        "w/a/s/d",
        Action::MoveDetector(-1, 0),
        Scope::Main,
        "move the virtual detector centre",
        Some("detector")
    ),
    b!(&[(Char('a'), N)], "", Action::MoveDetector(0, -1), Scope::Main, "", None),
    b!(&[(Char('s'), N)], "", Action::MoveDetector(1, 0), Scope::Main, "", None),
    b!(&[(Char('d'), N)], "", Action::MoveDetector(0, 1), Scope::Main, "", None),
    b!(
        &[(Char('W'), S), (Char('W'), N)],
        "W/A/S/D",
        Action::MoveDetector(-5, 0),
        Scope::Main,
        "move detector centre by 5 (Shift)",
        None
    ),
    b!(&[(Char('A'), S), (Char('A'), N)], "", Action::MoveDetector(0, -5), Scope::Main, "", None),
    b!(&[(Char('S'), S), (Char('S'), N)], "", Action::MoveDetector(5, 0), Scope::Main, "", None),
    b!(&[(Char('D'), S), (Char('D'), N)], "", Action::MoveDetector(0, 5), Scope::Main, "", None),
    b!(
        &[(Char('g'), N)],
        "g",
        Action::CycleScale,
        Scope::Global,
        "cycle scale: linear / log / sqrt (s belongs to WASD)",
        Some("scale")
    ),
    b!(
        &[(Char('+'), N), (Char('+'), S), (Char('='), N)],
        "+/-",
        Action::Radius(1),
        Scope::Main,
        "grow / shrink the detector radius (outer for ADF)",
        Some("radius")
    ),
    b!(&[(Char('-'), N)], "", Action::Radius(-1), Scope::Main, "", None),
    b!(&[(Char(']'), N)], "[/]", Action::InnerRadius(1), Scope::Main, "shrink / grow the ADF inner radius", None),
    b!(&[(Char('['), N)], "", Action::InnerRadius(-1), Scope::Main, "", None),
    b!(
        &[(Char('+'), N), (Char('+'), S), (Char('='), N)],
        "+/-",
        Action::FftRegion(1),
        Scope::Fft,
        "grow / shrink the averaging region",
        Some("region")
    ),
    b!(&[(Char('-'), N)], "", Action::FftRegion(-1), Scope::Fft, "", None),
    b!(
        &[(Char('v'), N)],
        "v",
        Action::FftReverse,
        Scope::Fft,
        "reverse view: pick K on the detector, show G over Q",
        Some("reverse")
    ),
    b!(
        &[(Char('o'), N)],
        "o",
        Action::FftTrotters,
        Scope::Fft,
        "trotter overlay of the SSB result (P): disk, its +-Q copies, the |Q| < 2a band",
        None
    ),
    b!(
        &[(Char('m'), N)],
        "m",
        Action::CycleDetector,
        Scope::Main,
        "cycle detector: sum, BF, ADF, CoM x, CoM y, DPC",
        Some("mode")
    ),
    b!(&[(Char('p'), N)], "p", Action::CycleColormap, Scope::Global, "cycle colour map", Some("cmap")),
    b!(
        &[(Char('%'), N), (Char('%'), S)],
        "%",
        Action::CycleClip,
        Scope::Global,
        "cycle clipping: 0.5-99.5, 0.1-99.9, 1-99 %, min-max",
        None
    ),
    b!(
        &[(Char('o'), N)],
        "o",
        Action::CycleLayout,
        Scope::Main,
        "layout: one image + frame / three images (BF, ADF, DPC) + frame",
        None
    ),
    b!(
        &[(Char('t'), N)],
        "t",
        Action::Diffractogram,
        Scope::Main,
        "diffractogram (FFT) of the image/ROI: |F|^0.5, log, off",
        None
    ),
    b!(
        &[(Char('u'), N)],
        "u",
        Action::CycleCustom,
        Scope::Main,
        "custom detector: point, rect, mask from this pattern, BF, ADF, off",
        None
    ),
    b!(
        &[(Char('U'), S), (Char('U'), N)],
        "U",
        Action::CustomResponse,
        Scope::Main,
        "custom detector response: sum / maximum",
        None
    ),
    b!(
        &[(Char('E'), S), (Char('E'), N)],
        "E",
        Action::Ewpc,
        Scope::Main,
        "EWPC of the pattern in the frame pane",
        None
    ),
    b!(
        &[(Char('r'), N)],
        "r",
        Action::Roi,
        Scope::Main,
        "scan ROI: mark a corner, move, r again = mean diffraction",
        Some("ROI")
    ),
    b!(
        &[(Char(','), N)],
        ",/.",
        Action::EelsMove(-1),
        Scope::Eels,
        "move the energy window down / up (1/128 of the spectrum)",
        Some("window")
    ),
    b!(&[(Char('.'), N)], "", Action::EelsMove(1), Scope::Eels, "", None),
    b!(
        &[(Char('<'), N), (Char('<'), S)],
        "</>",
        Action::EelsPage(-1),
        Scope::Eels,
        "move the energy window by its width",
        None
    ),
    b!(&[(Char('>'), N), (Char('>'), S)], "", Action::EelsPage(1), Scope::Eels, "", None),
    b!(
        &[(Char('{'), N), (Char('{'), S)],
        "{/}",
        Action::EelsWidth(-1),
        Scope::Eels,
        "narrow / widen the energy window",
        Some("width")
    ),
    b!(&[(Char('}'), N), (Char('}'), S)], "", Action::EelsWidth(1), Scope::Eels, "", None),
    b!(&[(Char('y'), N)], "y", Action::EelsLog, Scope::Eels, "spectrum plot: log / linear counts", Some("log")),
    b!(&[(Esc, N)], "Esc", Action::ClearRoi, Scope::Main, "clear the ROI / close popups", None),
    b!(&[(Char('c'), N)], "c", Action::Convert, Scope::Main, "convert to EMD (background job)", Some("convert")),
    b!(
        &[(Char('F'), S), (Char('F'), N)],
        "F",
        Action::Fft,
        Scope::Global,
        "4D FFT (converts first if needed), then explorer",
        Some("FFT")
    ),
    b!(&[(Char('x'), N)], "x", Action::CancelJob, Scope::Global, "cancel the selected job", Some("cancel")),
    b!(&[(Char('n'), N)], "n/N", Action::SelectJob(1), Scope::Global, "select next / previous job", None),
    b!(&[(Char('N'), S), (Char('N'), N)], "", Action::SelectJob(-1), Scope::Global, "", None),
    b!(
        &[(Tab, N), (BackTab, S)],
        "Tab",
        Action::SwitchScreen,
        Scope::Global,
        "switch screen: main / FFT explorer",
        Some("screen")
    ),
    b!(&[(Char('e'), N)], "e", Action::Export, Scope::Global, "export the current image (PNG)", Some("export")),
    b!(
        &[(Char('f'), N)],
        "f",
        Action::Follow,
        Scope::Main,
        "follow a running acquisition (cursor on the newest frame)",
        None
    ),
    b!(&[(Char('i'), N)], "i", Action::DpcView, Scope::Main, "DPC view: iCoM + CoM colour wheel (on/off)", None),
    b!(
        &[(Char('.'), N)],
        ", . < > / 0",
        Action::DpcRotate(1),
        Scope::Main,
        "DPC: rotation -1/+1/-15/+15 deg, flip, back to found",
        None
    ),
    b!(&[(Char(','), N)], "", Action::DpcRotate(-1), Scope::Main, "", None),
    b!(&[(Char('>'), N), (Char('>'), S)], "", Action::DpcRotate(15), Scope::Main, "", None),
    b!(&[(Char('<'), N), (Char('<'), S)], "", Action::DpcRotate(-15), Scope::Main, "", None),
    b!(&[(Char('/'), N)], "", Action::DpcFlip, Scope::Main, "", None),
    b!(&[(Char('0'), N)], "", Action::DpcAuto, Scope::Main, "", None),
    b!(&[(Char('b'), N)], "b", Action::TcbfView, Scope::Main, "tcBF view: super-resolved BF + shifts (on/off)", None),
    b!(
        &[(Char('P'), S), (Char('P'), N)],
        "P",
        Action::PtychoView,
        Scope::Main,
        "ptychography view: SSB phase + iCoM + BF (on/off)",
        None
    ),
    b!(
        &[(Char(')'), N), (Char(')'), S)],
        "( ) ; ' Z T",
        Action::PtychoDefocus(100),
        Scope::Main,
        "ptychography defocus: -/+10 nm, -/+1 nm, 0, tcBF fit",
        None
    ),
    b!(&[(Char('('), N), (Char('('), S)], "", Action::PtychoDefocus(-100), Scope::Main, "", None),
    b!(&[(Char('\''), N)], "", Action::PtychoDefocus(10), Scope::Main, "", None),
    b!(&[(Char(';'), N)], "", Action::PtychoDefocus(-10), Scope::Main, "", None),
    b!(&[(Char('Z'), S), (Char('Z'), N)], "", Action::PtychoDefocusZero, Scope::Main, "", None),
    b!(&[(Char('T'), S), (Char('T'), N)], "", Action::PtychoDefocusTcbf, Scope::Main, "", None),
    b!(
        &[(Char('B'), S), (Char('B'), N)],
        "B",
        Action::TcbfUpsample,
        Scope::Main,
        "tcBF: upsample factor 1 / 2 / 4 (recomputes)",
        None
    ),
    b!(
        &[(Char('R'), S), (Char('R'), N)],
        "R",
        Action::DpcTypeRotation,
        Scope::Main,
        "DPC: type the rotation (degrees; Enter applies, Esc cancels)",
        None
    ),
    b!(
        &[(Char('I'), S), (Char('I'), N)],
        "I",
        Action::Inspector,
        Scope::Global,
        "inspector: HDF5 tree of the file, emdtui's caches (Esc closes)",
        None
    ),
    b!(&[(Char('?'), N), (Char('?'), S)], "?", Action::Help, Scope::Global, "this help", Some("help")),
    b!(&[(Char('q'), N)], "q", Action::Quit, Scope::Global, "quit (asks if jobs are running)", Some("quit")),
];

/// Keys that answer a yes/no prompt (checked before the table while a prompt is open).
pub fn prompt_answer(k: &KeyEvent) -> Option<Action> {
    match k.code {
        Char('y') | Char('Y') | Enter => Some(Action::Yes),
        Char('n') | Char('N') | Esc | Char('q') => Some(Action::No),
        _ => None,
    }
}

/// Keys of a number prompt (checked before the table while one is open): digits, minus and dot
/// are typed, Backspace deletes, Enter applies (Yes), Esc cancels (No).
pub fn number_prompt_key(k: &KeyEvent) -> Option<Action> {
    match k.code {
        Char(c) if c.is_ascii_digit() || c == '-' || c == '.' => Some(Action::PromptChar(c)),
        Backspace => Some(Action::PromptBack),
        Enter => Some(Action::Yes),
        Esc => Some(Action::No),
        _ => None,
    }
}

/// Keys of the inspector screen (checked instead of the table while it is open): arrows and
/// j/k move, PgUp/PgDn page, Home/End jump, Enter/space fold or unfold, left/right fold and
/// unfold, Esc (also q, I) closes.
pub fn inspector_key(k: &KeyEvent) -> Option<Action> {
    if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == Char('c') {
        return Some(Action::Quit);
    }
    Some(match k.code {
        Up | Char('k') => Action::InspectorMove(-1),
        Down | Char('j') => Action::InspectorMove(1),
        PageUp => Action::InspectorPage(-1),
        PageDown => Action::InspectorPage(1),
        Home => Action::InspectorMove(i32::MIN),
        End => Action::InspectorMove(i32::MAX),
        Enter | Char(' ') => Action::InspectorFold(0),
        Left | Char('h') => Action::InspectorFold(1),
        Right | Char('l') => Action::InspectorFold(-1),
        Esc | Char('q') | Char('I') => Action::Inspector,
        _ => return None,
    })
}

/// Actions a user can bind in the key configuration file, by name.
pub const CONFIGURABLE: &[(&str, Action)] = &[
    ("quit", Action::Quit),
    ("help", Action::Help),
    ("convert", Action::Convert),
    ("fft", Action::Fft),
    ("cycle_detector", Action::CycleDetector),
    ("cycle_scale", Action::CycleScale),
    ("cycle_colormap", Action::CycleColormap),
    ("roi", Action::Roi),
    ("clear_roi", Action::ClearRoi),
    ("export", Action::Export),
    ("cancel_job", Action::CancelJob),
    ("switch_screen", Action::SwitchScreen),
    ("fft_reverse", Action::FftReverse),
    ("fft_trotters", Action::FftTrotters),
    ("follow", Action::Follow),
    ("cycle_layout", Action::CycleLayout),
    ("cycle_clip", Action::CycleClip),
    ("diffractogram", Action::Diffractogram),
    ("custom_detector", Action::CycleCustom),
    ("custom_response", Action::CustomResponse),
    ("ewpc", Action::Ewpc),
    ("dpc_view", Action::DpcView),
    ("dpc_flip", Action::DpcFlip),
    ("dpc_found", Action::DpcAuto),
    ("tcbf_view", Action::TcbfView),
    ("tcbf_upsample", Action::TcbfUpsample),
    ("ptycho_view", Action::PtychoView),
    ("ptycho_defocus_zero", Action::PtychoDefocusZero),
    ("ptycho_defocus_tcbf", Action::PtychoDefocusTcbf),
    ("dpc_rotation", Action::DpcTypeRotation),
    ("inspector", Action::Inspector),
    ("up", Action::Move(-1, 0)),
    ("down", Action::Move(1, 0)),
    ("left", Action::Move(0, -1)),
    ("right", Action::Move(0, 1)),
];

/// User key bindings: one character per action, checked before the default table (so they can
/// take over a default key). Loaded once from `$EMDTUI_KEYS` or `<config dir>/emdtui/keys.json`,
/// e.g. `{"cycle_scale": "s", "quit": "Q"}`.
#[derive(Debug, Clone, Default)]
pub struct UserKeys {
    pub bindings: Vec<(char, Action, String)>,
}

impl UserKeys {
    /// Parse the JSON object `{"action": "k", ...}`; unknown actions or keys that are not one
    /// character are errors naming them.
    pub fn parse(text: &str) -> Result<UserKeys, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v.as_object().ok_or("expected an object {\"action\": \"key\"}")?;
        let mut bindings = Vec::new();
        for (name, key) in obj {
            let action = CONFIGURABLE.iter().find(|(n, _)| n == name).map(|(_, a)| *a).ok_or_else(|| {
                format!(
                    "unknown action {name:?} (known: {})",
                    CONFIGURABLE.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                )
            })?;
            let k = key.as_str().unwrap_or("");
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => bindings.push((c, action, name.clone())),
                _ => return Err(format!("{name}: key {key} must be a single character")),
            }
        }
        Ok(UserKeys { bindings })
    }

    /// The configuration file in use: `file` (from `EMDTUI_KEYS`) or the default
    /// `~/.config/emdtui/keys.json`.
    pub fn path(file: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
        if let Some(p) = file {
            return Some(p.to_path_buf());
        }
        directories::ProjectDirs::from("org", "emdtui", "emdtui").map(|d| d.config_dir().join("keys.json"))
    }

    /// Load from [`UserKeys::path`]; a missing file is no bindings, a broken one an error.
    pub fn load(file: Option<&std::path::Path>) -> Result<UserKeys, String> {
        match Self::path(file) {
            Some(p) if p.is_file() => {
                let t = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                Self::parse(&t).map_err(|e| format!("{}: {e}", p.display()))
            }
            _ => Ok(UserKeys::default()),
        }
    }
}

static USER_KEYS: std::sync::OnceLock<UserKeys> = std::sync::OnceLock::new();

/// Install the user's bindings (once, at start-up).
pub fn set_user_keys(k: UserKeys) {
    let _ = USER_KEYS.set(k);
}

fn user_keys() -> &'static [(char, Action, String)] {
    USER_KEYS.get().map(|u| u.bindings.as_slice()).unwrap_or(&[])
}

/// Look a key up in the table for the active screen (diffraction data).
pub fn lookup(k: &KeyEvent, fft_screen: bool) -> Option<Action> {
    lookup_in(k, if fft_screen { Context::Fft } else { Context::Main })
}

/// Look a key up in the table for `ctx`.
pub fn lookup_in(k: &KeyEvent, ctx: Context) -> Option<Action> {
    if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == Char('c') {
        return Some(Action::Quit);
    }
    if let Char(c) = k.code
        && let Some((_, a, _)) = user_keys().iter().find(|(u, _, _)| *u == c)
    {
        return Some(*a);
    }
    let mods = k.modifiers & (KeyModifiers::SHIFT);
    KEYS.iter()
        .filter(|b| ctx.offers(b))
        .find(|b| b.keys.iter().any(|(c, m)| *c == k.code && *m == mods))
        .map(|b| b.action)
}

/// Help lines: (keys, description, scope) for every binding with a label, then the user's own.
pub fn help_lines() -> Vec<(String, String, Scope)> {
    let mut v: Vec<(String, String, Scope)> = KEYS
        .iter()
        .filter(|b| !b.label.is_empty())
        .map(|b| (b.label.to_string(), b.desc.to_string(), b.scope))
        .collect();
    for (c, _, name) in user_keys() {
        v.push((c.to_string(), format!("{name} (your binding, keys.json)"), Scope::Global));
    }
    v
}

/// Footer entries for a screen (diffraction data).
pub fn footer(fft_screen: bool) -> Vec<(&'static str, &'static str)> {
    footer_in(if fft_screen { Context::Fft } else { Context::Main })
}

/// Footer entries for `ctx`.
pub fn footer_in(ctx: Context) -> Vec<(&'static str, &'static str)> {
    KEYS.iter()
        .filter(|b| ctx.offers(b))
        .filter_map(|b| b.footer.map(|f| (if b.label == "arrows/hjkl" { "arrows" } else { b.label }, f)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_duplicate_bindings_per_scope() {
        for (i, a) in KEYS.iter().enumerate() {
            for b in &KEYS[i + 1..] {
                // the EELS screen offers the main screen's keys except the diffraction-only ones
                let eels_main = matches!((a.scope, b.scope), (Scope::Main, Scope::Eels) | (Scope::Eels, Scope::Main))
                    && !a.action.diffraction_only()
                    && !b.action.diffraction_only();
                let overlap = a.scope == b.scope || a.scope == Scope::Global || b.scope == Scope::Global || eels_main;
                if !overlap {
                    continue;
                }
                for k in a.keys {
                    assert!(!b.keys.contains(k), "{:?} bound twice ({:?} and {:?})", k, a.action, b.action);
                }
            }
        }
    }

    #[test]
    fn user_bindings_parse_and_reject_bad_entries() {
        let u = UserKeys::parse(r#"{"cycle_scale": "s", "quit": "Q"}"#).unwrap();
        assert_eq!(u.bindings.len(), 2);
        assert!(u.bindings.contains(&('s', Action::CycleScale, "cycle_scale".into())));
        assert!(UserKeys::parse(r#"{"fly": "z"}"#).unwrap_err().contains("unknown action"));
        assert!(UserKeys::parse(r#"{"quit": "ctrl-q"}"#).unwrap_err().contains("single character"));
        assert!(UserKeys::parse("[1]").is_err());
    }

    #[test]
    fn dispatch() {
        let k = |c, m| KeyEvent::new(c, m);
        assert_eq!(lookup(&k(Char('m'), N), false), Some(Action::CycleDetector));
        assert_eq!(lookup(&k(Char('m'), N), true), None);
        assert_eq!(lookup(&k(Right, S), false), Some(Action::Move(0, 10)));
        assert_eq!(lookup(&k(Char('L'), S), false), Some(Action::Move(0, 10)));
        assert_eq!(lookup(&k(Char('+'), N), true), Some(Action::FftRegion(1)));
        assert_eq!(lookup(&k(Char('o'), N), false), Some(Action::CycleLayout));
        assert_eq!(lookup(&k(Char('t'), N), false), Some(Action::Diffractogram));
        assert_eq!(lookup(&k(Char('%'), S), true), Some(Action::CycleClip));
        assert_eq!(lookup(&k(Char('c'), KeyModifiers::CONTROL), false), Some(Action::Quit));
    }

    #[test]
    fn eels_keys_only_on_the_eels_screen_without_the_detector_keys() {
        let k = |c, m| KeyEvent::new(c, m);
        assert_eq!(lookup_in(&k(Char('.'), N), Context::Eels), Some(Action::EelsMove(1)));
        assert_eq!(lookup_in(&k(Char(','), N), Context::Eels), Some(Action::EelsMove(-1)));
        assert_eq!(lookup_in(&k(Char('>'), S), Context::Eels), Some(Action::EelsPage(1)));
        assert_eq!(lookup_in(&k(Char('}'), N), Context::Eels), Some(Action::EelsWidth(1)));
        assert_eq!(lookup_in(&k(Char('y'), N), Context::Eels), Some(Action::EelsLog));
        assert_eq!(lookup_in(&k(Char('y'), N), Context::Main), None);
        assert_eq!(lookup_in(&k(Char('m'), N), Context::Eels), None, "no virtual detectors for spectra");
        assert_eq!(lookup_in(&k(Char('F'), S), Context::Eels), None);
        assert_eq!(lookup_in(&k(Right, N), Context::Eels), Some(Action::Move(0, 1)));
        assert_eq!(lookup_in(&k(Char('r'), N), Context::Eels), Some(Action::Roi));
        let f = footer_in(Context::Eels);
        assert!(f.contains(&(",/.", "window")) && f.contains(&("y", "log")), "{f:?}");
        assert!(!f.iter().any(|(_, d)| *d == "detector" || *d == "FFT"), "{f:?}");
    }
}
