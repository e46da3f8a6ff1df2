//! The capability query with a hard deadline: the query sequences of ratatui-image (kitty
//! graphics, device attributes for sixel, cell size, then a device status report that every
//! terminal answers), written to stdout; answers read from stdin with `poll(2)` until the status
//! report's answer arrives or the deadline passes. Unlike `Picker::from_query_stdio`, no thread
//! is left blocked on stdin afterwards (it would eat the next keypress) and the deadline is not
//! extended by incoming bytes. Bytes that are not answers are keys typed meanwhile: they are
//! turned into key events instead of being dropped.

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui_image::picker::ProtocolType;
use ratatui_image::picker::cap_parser::{Parser, QueryStdioOptions, Response};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The status report was answered (the terminal answers queries).
    pub answered: bool,
    pub protocol: Option<ProtocolType>,
    /// Cell size in pixels (width, height).
    pub cell: Option<(u16, u16)>,
    pub keys: Vec<Event>,
}

pub fn run(deadline: Duration, avoid_kitty_sixel: bool) -> std::io::Result<Answer> {
    let t0 = Instant::now();
    let opts = QueryStdioOptions {
        blacklist_protocols: if avoid_kitty_sixel {
            vec![ProtocolType::Kitty, ProtocolType::Sixel]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let mut out = std::io::stdout();
    out.write_all(Parser::query(false, opts).as_bytes())?;
    out.flush()?;
    let mut bytes = Vec::new();
    loop {
        if split(&bytes).2 {
            break;
        }
        let left = deadline.saturating_sub(t0.elapsed());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd { fd: libc::STDIN_FILENO, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().clamp(1, i32::MAX as u128) as i32) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            continue; // the deadline check above ends the loop
        }
        if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 && pfd.revents & libc::POLLIN == 0 {
            break;
        }
        let mut buf = [0u8; 1024];
        // SAFETY: reads at most buf.len() bytes into buf; poll said stdin is readable
        let r = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(e.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock) {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..r as usize]);
    }
    Ok(interpret(&bytes))
}

/// Turn what was read into an [`Answer`].
pub fn interpret(bytes: &[u8]) -> Answer {
    let (answers, keys, answered) = split(bytes);
    let mut parser = Parser::new();
    let mut a = Answer { answered, keys: key_events(&keys), ..Default::default() };
    for seq in answers {
        for &b in &seq {
            for r in parser.push(char::from(b)) {
                match r {
                    Response::Kitty => a.protocol = Some(ProtocolType::Kitty),
                    Response::Sixel if a.protocol.is_none() => a.protocol = Some(ProtocolType::Sixel),
                    Response::CellSize(Some(c)) => a.cell = Some(c),
                    _ => {}
                }
            }
        }
    }
    a
}

/// Split terminal input into query answers (CSI ending in `c`, `t`, `n` or `R`; APC, OSC
/// and DCS strings) and everything else (keys); the flag says the status report (`ESC[0n`)
/// was answered. An unfinished answer at the end is dropped, an unfinished CSI kept as keys.
pub fn split(bytes: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>, bool) {
    let (mut answers, mut keys, mut status) = (Vec::new(), Vec::new(), false);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0x1b || i + 1 >= bytes.len() {
            keys.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'[' => {
                let mut j = i + 2;
                while j < bytes.len() && (0x20..=0x3f).contains(&bytes[j]) {
                    j += 1;
                }
                if j >= bytes.len() || !(0x40..=0x7e).contains(&bytes[j]) {
                    // unfinished (or broken): keep as key bytes up to here
                    keys.extend_from_slice(&bytes[i..j.min(bytes.len())]);
                    i = j;
                    continue;
                }
                let seq = &bytes[i..=j];
                let mouse = seq.get(2) == Some(&b'<');
                if !mouse && matches!(bytes[j], b'c' | b't' | b'n' | b'R') {
                    if bytes[j] == b'n' {
                        status = true;
                    }
                    answers.push(seq.to_vec());
                } else {
                    keys.extend_from_slice(seq);
                }
                i = j + 1;
            }
            b'_' | b']' | b'P' => {
                // string: up to BEL or ST (ESC \)
                let mut j = i + 2;
                let mut end = None;
                while j < bytes.len() {
                    if bytes[j] == 0x07 {
                        end = Some(j);
                        break;
                    }
                    if bytes[j] == 0x1b && bytes.get(j + 1) == Some(&b'\\') {
                        end = Some(j + 1);
                        break;
                    }
                    j += 1;
                }
                match end {
                    Some(e) => {
                        answers.push(bytes[i..=e].to_vec());
                        i = e + 1;
                    }
                    None => i = bytes.len(),
                }
            }
            _ => {
                keys.push(0x1b);
                i += 1;
            }
        }
    }
    (answers, keys, status)
}

fn modifiers(param: Option<&str>) -> KeyModifiers {
    let m = param.and_then(|p| p.parse::<u8>().ok()).unwrap_or(1).saturating_sub(1);
    let mut k = KeyModifiers::empty();
    for (bit, f) in [(1, KeyModifiers::SHIFT), (2, KeyModifiers::ALT), (4, KeyModifiers::CONTROL)] {
        if m & bit != 0 {
            k |= f;
        }
    }
    k
}

fn plain(b: u8) -> Option<KeyEvent> {
    Some(match b {
        b'\r' | b'\n' => KeyCode::Enter.into(),
        b'\t' => KeyCode::Tab.into(),
        0x7f | 0x08 => KeyCode::Backspace.into(),
        0x1b => KeyCode::Esc.into(),
        0x01..=0x1a => KeyEvent::new(KeyCode::Char((b - 1 + b'a') as char), KeyModifiers::CONTROL),
        0x20..=0x7e => {
            let c = b as char;
            KeyEvent::new(
                KeyCode::Char(c),
                if c.is_ascii_uppercase() { KeyModifiers::SHIFT } else { KeyModifiers::empty() },
            )
        }
        _ => return None,
    })
}

/// Key events from raw key bytes, encoded as crossterm reports them (printable characters,
/// Enter/Tab/Backspace/Esc, Ctrl+letter, Alt+key, arrows, Home/End, Page Up/Down, Insert,
/// Delete, with xterm modifiers). Mouse reports and unknown sequences are dropped.
pub fn key_events(bytes: &[u8]) -> Vec<Event> {
    let mut ev = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == 0x1b && i + 1 < bytes.len() {
            let next = bytes[i + 1];
            if next == b'[' || next == b'O' {
                let mut j = i + 2;
                while j < bytes.len() && (0x20..=0x3f).contains(&bytes[j]) {
                    j += 1;
                }
                if j < bytes.len() {
                    let params = std::str::from_utf8(&bytes[i + 2..j]).unwrap_or("");
                    let mut p = params.split(';');
                    let (first, m) = (p.next(), p.next());
                    let code = match bytes[j] {
                        b'A' => Some(KeyCode::Up),
                        b'B' => Some(KeyCode::Down),
                        b'C' => Some(KeyCode::Right),
                        b'D' => Some(KeyCode::Left),
                        b'H' => Some(KeyCode::Home),
                        b'F' => Some(KeyCode::End),
                        b'Z' => Some(KeyCode::BackTab),
                        b'~' => match first {
                            Some("1" | "7") => Some(KeyCode::Home),
                            Some("2") => Some(KeyCode::Insert),
                            Some("3") => Some(KeyCode::Delete),
                            Some("4" | "8") => Some(KeyCode::End),
                            Some("5") => Some(KeyCode::PageUp),
                            Some("6") => Some(KeyCode::PageDown),
                            _ => None,
                        },
                        _ => None,
                    };
                    if let Some(code) = code {
                        let mut mods = modifiers(m);
                        if code == KeyCode::BackTab {
                            mods |= KeyModifiers::SHIFT;
                        }
                        ev.push(Event::Key(KeyEvent::new(code, mods)));
                    }
                    i = j + 1;
                    continue;
                }
                i = bytes.len();
                continue;
            }
            if let Some(mut k) = plain(next).filter(|_| next != 0x1b) {
                k.modifiers |= KeyModifiers::ALT;
                ev.push(Event::Key(k));
                i += 2;
                continue;
            }
        }
        if b >= 0x80 {
            // a UTF-8 character
            let len = match b {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 1,
            };
            if let Some(c) =
                bytes.get(i..i + len).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.chars().next())
            {
                let m = if c.is_uppercase() { KeyModifiers::SHIFT } else { KeyModifiers::empty() };
                ev.push(Event::Key(KeyEvent::new(KeyCode::Char(c), m)));
            }
            i += len;
            continue;
        }
        if let Some(k) = plain(b) {
            ev.push(Event::Key(k));
        }
        i += 1;
    }
    ev
}

/// Cell size in pixels from the terminal size ioctl, if the terminal reports pixels.
pub fn cell_from_ioctl() -> Option<(u16, u16)> {
    // SAFETY: winsize is plain integers; all-zero is a valid value
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize
    if unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return None;
    }
    (ws.ws_xpixel > 0 && ws.ws_ypixel > 0 && ws.ws_col > 0 && ws.ws_row > 0)
        .then(|| (ws.ws_xpixel / ws.ws_col, ws.ws_ypixel / ws.ws_row))
}

/// Drops a kitty graphics answer that arrives after the deadline (slow link): crossterm
/// reads `ESC _ G i = 3 1 ; O K ESC \` as Alt+`_`, `G`, `i`, ... Alt+`\`, which would be
/// taken for keys. Other late answers (device attributes, cell size, status) crossterm
/// already drops. Active only for a while after an unanswered query.
pub struct LateAnswerFilter {
    until: Option<Instant>,
    held: Vec<Event>,
    swallowing: bool,
}

const KITTY_PREFIX: &[char] = &['G', 'i', '=', '3'];

fn key_char(e: &Event) -> Option<(char, bool)> {
    match e {
        Event::Key(k) => match k.code {
            KeyCode::Char(c) => Some((c, k.modifiers.contains(KeyModifiers::ALT))),
            _ => None,
        },
        _ => None,
    }
}

impl LateAnswerFilter {
    pub fn new(active: bool, window: Duration) -> Self {
        LateAnswerFilter { until: active.then(|| Instant::now() + window), held: Vec::new(), swallowing: false }
    }

    /// Feed one event; returns the events to pass on.
    pub fn push(&mut self, e: Event) -> Vec<Event> {
        let active = self.until.is_some_and(|u| Instant::now() < u);
        if !active && self.held.is_empty() && !self.swallowing {
            return vec![e];
        }
        if self.swallowing {
            if key_char(&e) == Some(('\\', true)) || self.held.len() > 64 {
                self.swallowing = false;
                self.held.clear();
            } else {
                self.held.push(e);
            }
            return Vec::new();
        }
        if self.held.is_empty() {
            if active && key_char(&e) == Some(('_', true)) {
                self.held.push(e);
                return Vec::new();
            }
            return vec![e];
        }
        let n = self.held.len() - 1;
        if key_char(&e) == Some((KITTY_PREFIX[n], false)) {
            self.held.push(e);
            if self.held.len() == KITTY_PREFIX.len() + 1 {
                self.swallowing = true;
            }
            return Vec::new();
        }
        let mut out = std::mem::take(&mut self.held);
        out.extend(self.push(e));
        out
    }
}
