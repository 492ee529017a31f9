//! Progress: the one reporter that owns the terminal while a run works. Workers send it
//! events over a bounded channel and never print. On a terminal it draws a bar (items,
//! bytes, rate, ETA); otherwise it writes a plain line now and then, for logs and cron.

use std::io::IsTerminal as _;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What workers tell the reporter.
#[derive(Clone, Debug)]
pub enum Event {
    /// Text for a person (a task's summary), shown above the bar.
    Say(String),
    /// The reporter learns how much is to come.
    Planned { bytes: u64 },
    /// Items done, bytes written and items failed since the last event (a worker
    /// sends one per package, or per part of a large file).
    Progress { items: u64, bytes: u64, failed: u64 },
}

/// The reporter's thread and its channel.
#[derive(Debug)]
pub struct Reporter {
    sender: SyncSender<Event>,
    thread: Option<JoinHandle<()>>,
}

/// How often a plain progress line is written when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

impl Reporter {
    /// Starts the reporter; `label` names what is running.
    pub fn start(label: String) -> Reporter {
        let (sender, receiver) = sync_channel(4096);
        let tty = std::io::stderr().is_terminal();
        let thread = std::thread::Builder::new()
            .name("ferry-progress".into())
            .spawn(move || report(&label, &receiver, tty))
            .ok();
        Reporter { sender, thread }
    }

    pub fn sender(&self) -> SyncSender<Event> {
        self.sender.clone()
    }

    /// Shows text for a person without tearing the bar.
    pub fn say(&self, text: String) {
        let _ = self.sender.send(Event::Say(text));
    }

    /// Waits until every event is shown and the bar is cleared.
    pub fn finish(mut self) {
        let (sender, _) = sync_channel(0);
        drop(std::mem::replace(&mut self.sender, sender));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn report(label: &str, events: &Receiver<Event>, tty: bool) {
    let bar = tty.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} · {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar
    });
    let (mut items, mut failed, mut bytes, mut total) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut last_line = Instant::now();
    loop {
        match events.recv_timeout(Duration::from_millis(500)) {
            Ok(Event::Say(text)) => match &bar {
                Some(bar) => bar.suspend(|| eprint!("{text}")),
                None => eprint!("{text}"),
            },
            Ok(Event::Planned { bytes: planned }) => {
                total += planned;
                if let Some(bar) = &bar {
                    bar.set_length(total);
                }
            }
            Ok(Event::Progress {
                items: i,
                bytes: b,
                failed: f,
            }) => {
                items += i;
                bytes += b;
                failed += f;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        match &bar {
            Some(bar) => {
                bar.set_position(bytes);
                bar.set_message(format!("{items} items, {failed} failed"));
            }
            None if last_line.elapsed() >= PLAIN_EVERY && (total > 0 || items + failed > 0) => {
                last_line = Instant::now();
                eprintln!(
                    "{label}: {items} items, {} in {}s, {failed} failed",
                    bytesize::ByteSize(bytes).display().iec(),
                    started.elapsed().as_secs()
                );
            }
            None => {}
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
