//! Drawing the model with ratatui: nothing here decides anything.

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, TableState};
use ratatui::Frame;

use super::model::{ago, describe, human_duration, Focus, Model, SPARK_MINUTES};
use crate::kinds::{Panel, Tone};
use metasystem_actors::NodeState;

const HELP: &str =
    "↑↓ select  Tab tree/breakers  r restart  s stop  g start  x kill  y sync  b reset breaker  / filter  q quit";

fn colour(state: &str) -> Color {
    match state {
        "running" | "closed" | "pass" | "success" | "sent" | "resolved" | "online" => Color::Green,
        "restarting" | "starting" | "half_open" | "warn" | "warning" | "pending" | "skipped"
        | "disabled" => Color::Yellow,
        "failed" | "open" | "forced_open" | "fail" | "error" | "firing" | "critical" => Color::Red,
        _ => Color::Gray,
    }
}

fn styled(text: impl Into<String>, state: &str) -> Cell<'static> {
    Cell::from(Span::styled(
        text.into(),
        Style::default().fg(colour(state)),
    ))
}

fn block(title: String, focused: bool) -> Block<'static> {
    let b = Block::default().borders(Borders::ALL).title(title);
    if focused {
        b.border_style(Style::default().fg(Color::Cyan))
    } else {
        b
    }
}

fn selected() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

pub fn draw(f: &mut Frame, m: &mut Model, now_ms: i64, socket: &str) {
    let area = f.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(6),
            Constraint::Length(8),
            Constraint::Length(1),
        ])
        .split(area);
    header(f, m, rows[0], socket);
    let middle = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(55), Constraint::Percentage(45)])
        .split(rows[1]);
    tree(f, m, middle[0], now_ms);
    let (n_sync, n_breakers) = m
        .snapshot
        .as_ref()
        .map_or((0, 0), |s| (s.sync.len(), s.breakers.len()));
    let panels: &[Panel] = m.snapshot.as_ref().map_or(&[], |s| &s.panels);
    // The kinds' panels below sync and breakers, each as tall as its rows; the last takes
    // what is left.
    let mut heights = vec![
        Constraint::Length(n_sync as u16 + 3),
        Constraint::Length(n_breakers as u16 + 3),
    ];
    for (i, p) in panels.iter().enumerate() {
        heights.push(if i + 1 == panels.len() {
            Constraint::Min(3)
        } else {
            Constraint::Length(p.rows.len() as u16 + 3)
        });
    }
    let right = Layout::default()
        .direction(Direction::Vertical)
        .constraints(heights)
        .split(middle[1]);
    sync(f, m, right[0], now_ms);
    breakers(f, m, right[1]);
    for (panel, area) in panels.iter().zip(right.iter().skip(2)) {
        kind_panel(f, panel, *area);
    }
    let bottom = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(60), Constraint::Percentage(40)])
        .split(rows[2]);
    alerts(f, m, bottom[0]);
    let buckets = m.restart_buckets(now_ms);
    let total: u64 = buckets.iter().sum();
    f.render_widget(
        Sparkline::default()
            .block(block(
                format!("restarts/min, last {SPARK_MINUTES} min: {total}"),
                false,
            ))
            .style(Style::default().fg(if total > 0 {
                Color::Yellow
            } else {
                Color::Green
            }))
            .data(&buckets),
        bottom[1],
    );
    let footer = match (&m.editing, &m.confirm, &m.message) {
        (Some(text), _, _) => Line::from(format!("filter: {text}▏ (Enter apply, Esc cancel)")),
        (None, Some(command), _) => Line::from(Span::styled(
            format!("{}? y/n", describe(command)),
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        )),
        (None, None, Some(msg)) => Line::from(msg.clone()),
        (None, None, None) => Line::from(HELP),
    };
    f.render_widget(Paragraph::new(footer), rows[3]);
}

fn header(f: &mut Frame, m: &Model, area: Rect, socket: &str) {
    let mut spans = vec![Span::styled(
        " metasystem top ",
        Style::default().add_modifier(Modifier::BOLD),
    )];
    spans.push(Span::raw(format!("· {socket} · ")));
    if m.connected {
        spans.push(Span::styled("connected", Style::default().fg(Color::Green)));
    } else {
        let why = m.problem.as_deref().unwrap_or("connecting");
        spans.push(Span::styled(
            format!("disconnected ({why}); reconnecting"),
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    if !m.filter.is_empty() {
        spans.push(Span::raw(format!(" · filter: {}", m.filter)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn tree(f: &mut Frame, m: &Model, area: Rect, now_ms: i64) {
    let visible = m.visible();
    let rows: Vec<Row> = visible
        .iter()
        .map(|n| {
            let uptime = match n.state {
                NodeState::Running => m.uptime_s(n, now_ms).map(human_duration),
                NodeState::Restarting => n.restart_in_s.map(|s| format!("in {s:.1}s")),
                _ => None,
            };
            Row::new(vec![
                Cell::from(format!("{}{}", "  ".repeat(n.depth), n.name)),
                Cell::from(n.kind.clone()),
                styled(n.state.as_str(), n.state.as_str()),
                styled(
                    n.restarts.to_string(),
                    if n.restarts > 0 { "warn" } else { "" },
                ),
                Cell::from(uptime.unwrap_or_default()),
            ])
        })
        .collect();
    let total = m.snapshot.as_ref().map_or(0, |s| s.tree.len());
    let title = if visible.len() == total {
        format!("tree ({total})")
    } else {
        format!("tree ({} of {total})", visible.len())
    };
    let table = Table::new(
        rows,
        [
            Constraint::Min(16),
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(9),
        ],
    )
    .header(
        Row::new(["PATH", "KIND", "STATE", "RESTARTS", "UPTIME"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(block(title, m.focus == Focus::Tree))
    .row_highlight_style(selected());
    let mut state = TableState::default().with_selected(m.selected_index());
    f.render_stateful_widget(table, area, &mut state);
}

fn sync(f: &mut Frame, m: &Model, area: Rect, now_ms: i64) {
    let rows: Vec<Row> = m
        .snapshot
        .iter()
        .flat_map(|s| &s.sync)
        .map(|t| {
            let s = &t.status;
            let online = if s.running {
                "running"
            } else if s.online {
                "online"
            } else {
                "offline"
            };
            let last = s.last.as_ref().map_or("never".to_string(), |l| {
                format!("{} {}", l.outcome.name(), ago(l.at_ms, now_ms))
            });
            let last_state = s.last.as_ref().map_or("", |l| l.outcome.name());
            let rate = t
                .success_rate_24h
                .map_or("-".to_string(), |r| format!("{:.0}%", r * 100.0));
            let rate_state = match t.success_rate_24h {
                Some(r) if r >= 0.99 => "pass",
                Some(r) if r >= 0.8 => "warn",
                Some(_) => "fail",
                None => "",
            };
            let avg = t
                .avg_duration_s_24h
                .map_or("-".to_string(), |a| format!("{a:.2}s"));
            Row::new(vec![
                Cell::from(s.name.clone()),
                styled(online, online),
                styled(last, last_state),
                styled(rate, rate_state),
                Cell::from(avg),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(8),
            Constraint::Length(8),
            Constraint::Min(14),
            Constraint::Length(5),
            Constraint::Length(7),
        ],
    )
    .header(
        Row::new(["TARGET", "STATE", "LAST RUN", "24H", "AVG"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(block("sync".into(), false));
    f.render_widget(table, area);
}

fn breakers(f: &mut Frame, m: &Model, area: Rect) {
    let rows: Vec<Row> = m
        .snapshot
        .iter()
        .flat_map(|s| &s.breakers)
        .map(|b| {
            Row::new(vec![
                Cell::from(b.name.clone()),
                styled(b.state.as_str(), b.state.as_str()),
                Cell::from(format!(
                    "{}/{}",
                    b.consecutive_failures, b.failure_threshold
                )),
                Cell::from(format!("{} calls {} failed", b.calls, b.failures)),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(14),
            Constraint::Length(11),
            Constraint::Length(5),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(["BREAKER", "STATE", "FAILS", "CALLS"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(block("breakers".into(), m.focus == Focus::Breakers))
    .row_highlight_style(if m.focus == Focus::Breakers {
        selected()
    } else {
        Style::default()
    });
    let mut state = TableState::default().with_selected(m.selected_breaker_index());
    f.render_stateful_widget(table, area, &mut state);
}

/// A kind's panel ([`crate::kinds::ActorKind::top_panel`]).
fn kind_panel(f: &mut Frame, panel: &Panel, area: Rect) {
    let tone = |t: Tone| match t {
        Tone::Plain => Style::default(),
        Tone::Good => Style::default().fg(Color::Green),
        Tone::Warn => Style::default().fg(Color::Yellow),
        Tone::Bad => Style::default().fg(Color::Red),
    };
    let rows: Vec<Row> = panel
        .rows
        .iter()
        .map(|cells| {
            Row::new(
                cells
                    .iter()
                    .map(|c| Cell::from(Span::styled(c.text.clone(), tone(c.tone))))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let widths: Vec<Constraint> = panel
        .columns
        .iter()
        .map(|(_, w)| w.map_or(Constraint::Min(10), Constraint::Length))
        .collect();
    let table = Table::new(rows, widths)
        .header(
            Row::new(panel.columns.iter().map(|(name, _)| *name))
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(block(panel.title.clone(), false));
    f.render_widget(table, area);
}

fn alerts(f: &mut Frame, m: &Model, area: Rect) {
    let mut lines: Vec<Line> = m
        .snapshot
        .iter()
        .flat_map(|s| &s.alerts)
        .map(|a| {
            Line::from(vec![
                Span::raw(format!("{} ", a.created.get(11..19).unwrap_or(&a.created))),
                Span::styled(
                    format!("{:<8} ", a.severity),
                    Style::default().fg(colour(&a.severity)),
                ),
                Span::styled(
                    format!("{:<8} ", a.status),
                    Style::default().fg(colour(&a.status)),
                ),
                Span::raw(a.title.clone()),
            ])
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "no alerts",
            Style::default().fg(Color::Green),
        )));
    }
    f.render_widget(
        Paragraph::new(lines).block(block("recent alerts".into(), false)),
        area,
    );
}
