//! `metasystem top`: the live dashboard, and `top --summary` (the same data once, as JSON).
//!
//! One loop owns the model and the terminal; threads feed it through one channel: the
//! terminal's input, the event subscription (`feed::stream`), the snapshot reader
//! (`feed::Fetcher`) and one thread per operator action. The loop never waits for the daemon.
//! Events mark the snapshot stale; it is read again at the next tick (every `--refresh`),
//! and every `FULL_EVERY` anyway (probe values and sync progress change without events).
//! The terminal is restored on exit and on panic (ratatui's hook).

mod draw;
mod feed;
pub mod model;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};

use super::{client, exit, Global};
use feed::{Fetcher, Msg};
use model::{Action, Key, Model};

/// The snapshot is read again at least this often while connected.
const FULL_EVERY: Duration = Duration::from_secs(5);
/// The daemon's answers to the dashboard's reads.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// An operator's action runs on a thread of its own: a forced sync waits for its run.
const ACTION_TIMEOUT: Duration = Duration::from_secs(600);

pub fn main(global: &Global, refresh: Duration, summary: bool) -> u8 {
    let socket = match client::socket(global) {
        Ok(s) => s,
        Err(message) => return client::failed(global, "connection", &message, exit::USAGE),
    };
    let timeout = global.timeout.min(READ_TIMEOUT);
    if summary {
        return print_summary(global, &socket, timeout);
    }
    match live(&socket, timeout, refresh) {
        Ok(()) => exit::OK,
        Err(e) => client::failed(global, "terminal", &e.to_string(), exit::USAGE),
    }
}

fn print_summary(global: &Global, socket: &Path, timeout: Duration) -> u8 {
    let mut fetcher = Fetcher::new(socket, timeout);
    let (snap, seeds) = match fetcher.fetch() {
        Ok(s) => s,
        Err(message) => return client::failed(global, "connection", &message, exit::USAGE),
    };
    let mut m = Model::new();
    m.seed_restarts(seeds);
    let restarts = m.restart_buckets(feed::now_ms());
    let mut v = serde_json::to_value(&snap).unwrap_or_default();
    v["restarts_per_minute"] = serde_json::json!(restarts);
    for panel in &snap.panels {
        v[panel.key] = panel.data.clone();
    }
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{v}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            client::say(&format!("metasystem: cannot write the output: {e}"));
            exit::USAGE
        }
        _ => exit::OK,
    }
}

/// Restores the terminal when dropped (a normal exit or an error on the way out).
struct Terminal(ratatui::DefaultTerminal);

impl Drop for Terminal {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn live(socket: &Path, timeout: Duration, refresh: Duration) -> std::io::Result<()> {
    // Raw mode, the alternate screen, and a panic hook that restores both first.
    // A failure half-way (raw mode on, the alternate screen refused) still restores.
    let mut term = Terminal(ratatui::try_init().inspect_err(|_| ratatui::restore())?);
    let (tx, rx) = mpsc::channel::<Msg>();
    spawn("top-input", tx.clone(), input);
    {
        let (socket, tx) = (socket.to_path_buf(), tx.clone());
        std::thread::Builder::new()
            .name("top-stream".into())
            .spawn(move || feed::stream(socket, timeout, Duration::from_secs(1), tx))?;
    }
    let jobs = fetcher(socket.to_path_buf(), timeout, tx.clone())?;
    run_loop(&mut term.0, socket, refresh, &tx, &rx, &jobs)
}

fn spawn(name: &str, tx: Sender<Msg>, f: fn(Sender<Msg>)) {
    let _ = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || f(tx));
}

/// The snapshot reader: one fetch per request on its channel.
fn fetcher(socket: PathBuf, timeout: Duration, tx: Sender<Msg>) -> std::io::Result<Sender<()>> {
    let (jobs, asked) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("top-fetch".into())
        .spawn(move || {
            let mut f = Fetcher::new(&socket, timeout);
            while asked.recv().is_ok() {
                if tx.send(Msg::Snapshot(f.fetch())).is_err() {
                    return;
                }
            }
        })?;
    Ok(jobs)
}

/// The terminal's input: keys and resizes.
fn input(tx: Sender<Msg>) {
    loop {
        let msg = match event::read() {
            Ok(TermEvent::Key(k)) if k.kind != KeyEventKind::Release => {
                match map_key(k.code, k.modifiers) {
                    Some(key) => Msg::Key(key),
                    None => continue,
                }
            }
            Ok(TermEvent::Resize(..)) => Msg::Resize,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

fn map_key(code: KeyCode, mods: KeyModifiers) -> Option<Key> {
    Some(match code {
        KeyCode::Char('c') if mods.contains(KeyModifiers::CONTROL) => Key::CtrlC,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Tab => Key::Tab,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

fn run_loop(
    term: &mut ratatui::DefaultTerminal,
    socket: &Path,
    refresh: Duration,
    tx: &Sender<Msg>,
    rx: &Receiver<Msg>,
    jobs: &Sender<()>,
) -> std::io::Result<()> {
    let shown = socket.display().to_string();
    let mut m = Model::new();
    let mut fetching = true;
    let _ = jobs.send(());
    let mut last_fetch = Instant::now();
    let mut next_tick = Instant::now() + refresh;
    let mut redraw = true;
    loop {
        if redraw {
            term.draw(|f| draw::draw(f, &mut m, feed::now_ms(), &shown))?;
            redraw = false;
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Msg::Key(k)) => {
                match m.on_key(k) {
                    Some(Action::Quit) => return Ok(()),
                    Some(Action::Send(command)) => {
                        m.message = Some(format!("{}…", model::describe(&command)));
                        let (socket, tx) = (socket.to_path_buf(), tx.clone());
                        let _ = std::thread::Builder::new().name("top-action".into()).spawn(
                            move || {
                                let _ = tx.send(Msg::Reply(feed::act(
                                    &socket,
                                    ACTION_TIMEOUT,
                                    command,
                                )));
                            },
                        );
                    }
                    None => {}
                }
                redraw = true;
            }
            Ok(Msg::Resize) => {
                // ratatui resizes its buffers on the next draw.
                redraw = true;
            }
            Ok(Msg::StreamUp) => {
                m.last_event_id = 0;
                m.stale = true;
            }
            Ok(Msg::StreamDown(why)) => {
                if m.connected {
                    m.disconnected(&why);
                    redraw = true;
                }
            }
            Ok(Msg::Event(ev)) => m.apply_event(ev),
            Ok(Msg::Snapshot(got)) => {
                fetching = false;
                match got {
                    Ok((snap, seeds)) => {
                        m.apply_snapshot(snap);
                        m.seed_restarts(seeds);
                    }
                    Err(why) => m.disconnected(&why),
                }
                redraw = true;
            }
            Ok(Msg::Reply(text)) => {
                m.message = Some(text);
                m.stale = true;
                redraw = true;
            }
            Err(RecvTimeoutError::Timeout) => {
                next_tick += refresh;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + refresh;
                }
                let due = m.stale || !m.connected || last_fetch.elapsed() >= FULL_EVERY;
                if due && !fetching {
                    fetching = jobs.send(()).is_ok();
                    last_fetch = Instant::now();
                }
                // Uptimes and "ago" move on.
                redraw = true;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
