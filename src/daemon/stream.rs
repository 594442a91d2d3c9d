//! `subscribe`: a connection turned into a stream of committed events.
//!
//! The subscription to the store is taken first, then the backlog after the client's cursor
//! is read from the database, then live events follow; ids tell which were already sent, so
//! nothing between the two is lost or repeated. A client that does not keep up loses the
//! oldest events (the store keeps a bounded buffer per subscriber) and is told how many.

use std::io;

use metasystem_actors::store::{events, EventQuery, EventRow};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use std::time::Instant;

use super::handle::events_query;
use super::Daemon;
use crate::control::protocol::{code, Event, Response, StreamItem, Topic};
use crate::control::server::write_line;
use crate::control::slots::{Activity, Slot};

/// Backlog pages read at a time.
const PAGE: usize = 500;

/// What a `subscribe` asks for.
pub struct Subscription {
    pub id: Option<u64>,
    pub topic: Topic,
    pub path: Option<String>,
    pub kind: Option<String>,
    pub after: Option<i64>,
}

impl Daemon {
    /// Serves a subscription until the client goes away or the daemon stops. The answer to a
    /// subscription that cannot start (a bad filter) is an error line, and the connection is
    /// done.
    pub async fn stream<R, W>(
        &self,
        sub: Subscription,
        reader: &mut R,
        writer: &mut W,
        slot: &Slot,
        mut stop: watch::Receiver<bool>,
    ) -> io::Result<()>
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let id = sub.id;
        let query = match events_query(None, sub.path, sub.kind) {
            Ok(q) => q,
            Err(message) => {
                return write_line(writer, &Response::error(id, code::BAD_REQUEST, message)).await
            }
        };
        // Subscribe before reading the backlog: what commits in between comes twice, and the
        // ids drop the repeats.
        let mut live = self.store.subscribe();
        let mut out = Out { writer, slot, id };
        out.send(StreamItem::Subscribed(sub.topic)).await?;
        let mut last = match sub.after {
            Some(after) => self.backlog(&query, after, &mut out).await?,
            None => 0,
        };
        let gone = until_eof(reader);
        tokio::pin!(gone);
        loop {
            tokio::select! {
                // What is committed is sent before the end is: the shutdown's own events
                // reach the stream.
                biased;
                item = live.recv() => match item {
                    Ok(row) => {
                        if row.id > last && query.matches(&row) {
                            last = row.id;
                            out.send(StreamItem::Event(Event::from(row.as_ref()))).await?;
                        }
                    }
                    Err(RecvError::Lagged(n)) => out.send(StreamItem::Dropped(n)).await?,
                    Err(RecvError::Closed) => {
                        return out.send(StreamItem::End("the daemon is shutting down".into())).await;
                    }
                },
                () = &mut gone => return Ok(()),
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    return out.send(StreamItem::End("the daemon is shutting down".into())).await;
                }
            }
        }
    }

    /// Sends the stored events after `after`; the last id sent.
    async fn backlog<W: AsyncWrite + Unpin>(
        &self,
        query: &EventQuery,
        after: i64,
        out: &mut Out<'_, W>,
    ) -> io::Result<i64> {
        let mut last = after;
        loop {
            let rows: Vec<EventRow> =
                match events::page(self.store.reader(), query, Some(last), PAGE).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the backlog of a subscription");
                        return Ok(last);
                    }
                };
            for row in &rows {
                last = row.id;
                out.send(StreamItem::Event(Event::from(row))).await?;
            }
            if rows.len() < PAGE {
                return Ok(last);
            }
        }
    }
}

/// Completes when the client closes its side; what it sends meanwhile is ignored.
pub(super) async fn until_eof<R: AsyncBufRead + Unpin>(reader: &mut R) {
    loop {
        match reader.fill_buf().await {
            Ok([]) | Err(_) => return,
            Ok(data) => {
                let n = data.len();
                reader.consume(n);
            }
        }
    }
}

/// The stream's side of the connection: each line marks the slot as waiting on the client
/// while it is written, so a stream whose client stopped reading can give its slot away.
struct Out<'a, W> {
    writer: &'a mut W,
    slot: &'a Slot,
    id: Option<u64>,
}

impl<W: AsyncWrite + Unpin> Out<'_, W> {
    async fn send(&mut self, item: StreamItem) -> io::Result<()> {
        self.slot.set(Activity::Writing(Instant::now()));
        // No write timeout here: while a stream's client does not read, its subscription falls
        // behind (dropping the oldest, counted) and its slot may be given away.
        let response = Response::ok(self.id, serde_json::json!(item));
        let written = write_line(self.writer, &response).await;
        self.slot.set(Activity::Streaming);
        written
    }
}
