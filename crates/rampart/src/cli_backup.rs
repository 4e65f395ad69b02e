//! `rampart backup|restore`: encrypted online backups and verified restores, with a progress
//! bar on a terminal (none when stdout is not one) and a summary at the end.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use rampart::app::backup::Progress;
use rampart::app::restore::{self, RestoreRequest};
use rampart::app::{Actor, App};
use rampart::config::Config;

/// A progress bar on stderr, redrawn per phase; hidden unless stdout is a terminal.
pub(crate) struct Bar {
    bar: ProgressBar,
    phase: Mutex<&'static str>,
}

impl Bar {
    pub(crate) fn new() -> Arc<Self> {
        let bar = if std::io::stdout().is_terminal() {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        Arc::new(Self {
            bar,
            phase: Mutex::new(""),
        })
    }
}

impl Bar {
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn update(&self, phase: &'static str, done: u64, total: u64) {
        let mut current = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if *current != phase {
            *current = phase;
            let template = if phase == "copying the database" {
                "{msg:28} [{bar:40}] {pos}/{len} pages ({eta})"
            } else if phase == "re-encrypting" {
                "{msg:28} [{bar:40}] {pos}/{len} values ({eta})"
            } else {
                "{msg:28} [{bar:40}] {bytes}/{total_bytes} ({eta})"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                self.bar.set_style(style.progress_chars("=> "));
            }
            self.bar.set_message(phase);
            self.bar.reset();
        }
        self.bar.set_length(total);
        self.bar.set_position(done);
    }
}

pub async fn run_backup(app: &App, out: PathBuf) -> anyhow::Result<()> {
    let bar = Bar::new();
    let report = app.create_backup(&Actor::Operator, &out, bar.clone()).await;
    bar.bar.finish_and_clear();
    let report = report?;
    let m = &report.manifest;
    println!("Backup written to {}", report.path.display());
    println!(
        "  database  {}, {} messages, as of {}",
        HumanBytes(m.database_bytes),
        m.messages,
        m.created_at
    );
    println!(
        "  file      {} in {} chunks (AES-256-GCM), manifest authenticated",
        HumanBytes(report.file_bytes),
        m.chunks
    );
    println!(
        "  key id    {} (restoring needs this instance's master key; it is not in the backup)",
        m.key_id
    );
    println!("  took      {:.1} s", report.elapsed.as_secs_f64());
    Ok(())
}

/// Runs before anything opens the data directory: a restore must not create a database
/// or a master key there.
pub fn run_restore(
    config: &Config,
    from: PathBuf,
    master_key_file: Option<PathBuf>,
    force: bool,
    check_only: bool,
) -> anyhow::Result<()> {
    let request = RestoreRequest {
        from,
        data_dir: config.data_dir.clone(),
        configured_key: config.master_key_path(),
        master_key_file,
        force,
        check_only,
    };
    let bar = Bar::new();
    let report = restore::restore(&request, &*bar);
    bar.bar.finish_and_clear();
    let report = report.map_err(|e| {
        anyhow::anyhow!(
            "{e}\nrestore refused: nothing in {} was changed",
            request.data_dir.display()
        )
    })?;
    let m = &report.manifest;
    if check_only {
        println!("Backup {} is whole and opens", request.from.display());
    } else {
        println!(
            "Restored {} into {}",
            request.from.display(),
            request.data_dir.display()
        );
    }
    println!(
        "  database  {}, {} messages, backed up at {} by Rampart {}",
        HumanBytes(report.database.bytes),
        report.database.messages,
        m.created_at,
        m.rampart_version
    );
    println!(
        "  checked   manifest (HMAC), {} chunks (AES-256-GCM), SHA-256 of chunks and database{}",
        m.chunks,
        if check_only {
            ""
        } else {
            ", SQLite quick_check"
        }
    );
    if let Some(aside) = &report.set_aside {
        println!(
            "  replaced  the old database, set aside as {}",
            aside.display()
        );
    }
    if let Some(key) = &report.master_key_copied {
        println!("  key       master key copied to {}", key.display());
    }
    println!("  took      {:.1} s", report.elapsed.as_secs_f64());
    if !check_only {
        println!(
            "Start it with: rampart --data-dir {} serve",
            request.data_dir.display()
        );
    }
    Ok(())
}
