//! User key bindings (`keys.json`): they take over a default key, appear in the help, and a
//! broken file stops the UI with a message naming it.

use emdtui::tui::keys::{self, Action, UserKeys};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[test]
fn user_bindings_dispatch_and_show_in_help() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("keys.json");
    std::fs::write(&f, r#"{"cycle_scale": "s", "quit": "Q"}"#).unwrap();
    keys::set_user_keys(UserKeys::load(Some(&f)).unwrap());
    let k = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    assert_eq!(keys::lookup(&k('s'), false), Some(Action::CycleScale), "the user's key wins over WASD");
    assert_eq!(keys::lookup(&k('Q'), false), Some(Action::Quit));
    assert_eq!(keys::lookup(&k('q'), false), Some(Action::Quit), "defaults stay");
    assert_eq!(keys::lookup(&k('w'), false), Some(Action::MoveDetector(-1, 0)));
    assert!(keys::help_lines().iter().any(|(k, d, _)| k == "s" && d.contains("cycle_scale")));
    // a broken file is an error naming it (the UI refuses to start with it)
    std::fs::write(&f, r#"{"warp": "z"}"#).unwrap();
    let e = UserKeys::load(Some(&f)).unwrap_err();
    assert!(e.contains("keys.json") && e.contains("unknown action"), "{e}");
}
