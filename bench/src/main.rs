//! `rampart-bench`: drives Rampart's send API over HTTPS keep-alive at several concurrency levels
//! and reports sustained accepted messages/s and latency percentiles. See `bench/README.md`.

mod cli;
mod client;
mod load;
mod numbers;
mod report;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use clap::Parser;
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::Args;
use crate::client::Target;
use crate::load::{BodyFactory, Schedule, Stats, run_worker};
use crate::report::{LevelResult, ServerMemory};

/// Lets every worker of a level finish its set-up before the shared start time.
const START_DELAY: Duration = Duration::from_millis(50);

#[derive(Serialize)]
struct Summary<'a> {
    url: &'a str,
    recipients: u32,
    warmup_s: f64,
    duration_s: f64,
    number_pool: usize,
    levels: &'a [LevelResult],
    server_memory: Option<ServerMemory>,
}

fn main() -> ExitCode {
    match start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line with the whole cause chain; a backtrace helps nobody running a benchmark.
            eprintln!("rampart-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn start() -> Result<()> {
    // The same provider as the server; installing it explicitly avoids rustls's start-up panic
    // should another provider ever be linked in.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow!("a rustls crypto provider was already installed"))?;
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    ensure!(!args.duration.is_zero(), "--duration must be above zero");
    ensure!(
        args.rate.is_finite() && args.rate >= 0.0,
        "--rate must be a non-negative number of messages/s"
    );
    let target = Arc::new(Target::new(
        &args.url,
        &args.key,
        &args.cacert,
        args.timeout,
    )?);
    let pool = numbers::generate_pool(args.numbers, &args.countries)?;
    let recipients = usize::try_from(args.recipients)?;
    let bodies = Arc::new(BodyFactory::new(&args.from, &args.body, &pool, recipients)?);

    client::preflight(&target, bodies.body(0), recipients).await?;
    if !args.json {
        println!(
            "rampart-bench: {} recipient(s)/request, warm-up {}s, measure {}s, {} destination numbers; latency in ms",
            args.recipients,
            args.warmup.as_secs_f64(),
            args.duration.as_secs_f64(),
            args.numbers
        );
        println!("{}", report::table_header());
    }

    let mut results = Vec::with_capacity(args.concurrency.len());
    for &concurrency in &args.concurrency {
        let result = run_level(&args, &target, &bodies, concurrency).await?;
        if !args.json {
            println!("{}", report::table_row(&result));
        }
        results.push(result);
    }

    let server_memory = match args.pid {
        Some(pid) => Some(report::read_server_memory(pid)?),
        None => None,
    };
    if args.json {
        let summary = Summary {
            url: &args.url,
            recipients: args.recipients,
            warmup_s: args.warmup.as_secs_f64(),
            duration_s: args.duration.as_secs_f64(),
            number_pool: args.numbers,
            levels: &results,
            server_memory,
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if let Some(memory) = &server_memory {
        println!("{}", report::memory_line(memory));
    }
    Ok(())
}

/// Opens `concurrency` connections, runs the workers through warm-up and the window, merges.
async fn run_level(
    args: &Args,
    target: &Arc<Target>,
    bodies: &Arc<BodyFactory>,
    concurrency: usize,
) -> Result<LevelResult> {
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let connection = target.connect().await.with_context(|| {
            format!(
                "opening connection {} of {concurrency}",
                connections.len() + 1
            )
        })?;
        connections.push(connection);
    }

    let rate = args.open_loop_rate();
    // Each worker's share of the rate, in requests: interval = workers × recipients / rate.
    let interval = rate.map(|rate| {
        Duration::from_secs_f64(concurrency as f64 * f64::from(args.recipients) / rate)
    });
    let start = Instant::now() + START_DELAY;
    let measure_from = start + args.warmup;
    let schedule = Schedule {
        start,
        measure_from,
        measure_until: measure_from + args.duration,
        interval,
        concurrency,
        request_timeout: args.timeout,
    };

    let workers: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(worker, connection)| {
            tokio::spawn(run_worker(
                Arc::clone(target),
                Arc::clone(bodies),
                connection,
                schedule,
                worker,
            ))
        })
        .collect();
    let mut total = Stats::new()?;
    for worker in workers {
        total.merge(worker.await.context("a worker task failed")??)?;
    }

    let elapsed = total
        .last_completion
        .map_or(args.duration, |last| last.duration_since(measure_from))
        .max(args.duration);
    Ok(LevelResult::new(
        concurrency,
        rate,
        args.recipients,
        elapsed,
        &total,
    ))
}
