//! Cold-start benchmark of the function binaries, against a fake Lambda runtime API.
//!
//! For each binary (the three functions and the `hello-world` baseline, all release builds
//! of this machine's target), in interleaved rounds: start the process with a Lambda-like
//! environment whose `AWS_LAMBDA_RUNTIME_API` points at a loopback server of ours, and
//! measure the time from just before the spawn to its first
//! `GET /2018-06-01/runtime/invocation/next`, that is the whole init. The peak RSS is the
//! process's `VmHWM` at that moment. Then the process is killed.
//!
//! `webhook-ingest` is measured twice: with the local `ECWID_CLIENT_SECRET` override (no
//! I/O before the first invocation), and reading the secret from SSM, which the same fake
//! server answers on loopback (`AWS_ENDPOINT_URL`): that row is the SDK's own cost of the
//! one call made at init (the first AWS call also builds the process's HTTPS connector); in
//! AWS, add one round trip to SSM.
//!
//! ```sh
//! cargo build --release -p els-functions --bins --examples
//! target/release/examples/init-bench [rounds, default 30]
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SECRET_PARAMETER: &str = "/bench/ecwid-client-secret";

struct Case {
    label: &'static str,
    binary: &'static str,
    env: Vec<(&'static str, &'static str)>,
    /// Point the AWS SDK at the fake server (for the SSM call).
    aws_endpoint: bool,
}

fn cases() -> Vec<Case> {
    let queue = (
        "QUEUE_URL",
        "https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo",
    );
    vec![
        Case {
            label: "hello-world (baseline)",
            binary: "examples/hello-world",
            env: vec![],
            aws_endpoint: false,
        },
        Case {
            label: "webhook-ingest",
            binary: "webhook-ingest",
            env: vec![
                ("TABLE_NAME", "state"),
                queue,
                ("ECWID_CLIENT_SECRET", "bench-secret"),
            ],
            aws_endpoint: false,
        },
        Case {
            label: "webhook-ingest (secret from SSM)",
            binary: "webhook-ingest",
            env: vec![
                ("TABLE_NAME", "state"),
                queue,
                ("ECWID_CLIENT_SECRET_PARAMETER", SECRET_PARAMETER),
            ],
            aws_endpoint: true,
        },
        Case {
            label: "sale-poster",
            binary: "sale-poster",
            env: vec![
                ("TABLE_NAME", "state"),
                queue,
                ("MAX_RECEIVE_COUNT", "5"),
                ("TOKEN_KMS_KEY_ID", "alias/els-tokens"),
            ],
            aws_endpoint: false,
        },
        Case {
            label: "inventory-sync",
            binary: "inventory-sync",
            env: vec![
                ("TABLE_NAME", "state"),
                ("TOKEN_KMS_KEY_ID", "alias/els-tokens"),
            ],
            aws_endpoint: false,
        },
    ]
}

/// What the fake server saw.
enum Seen {
    FirstNext(Instant),
}

/// Serves one connection: answers SSM `GetParameter`, and reports the first `/next`
/// (which it never answers: the process is killed then).
fn serve(stream: TcpStream, seen: mpsc::Sender<Seen>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let at = Instant::now();
        let mut content_length = 0usize;
        let mut target = String::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => content_length = value.trim().parse().unwrap_or(0),
                    "x-amz-target" => target = value.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if request_line.starts_with("GET /2018-06-01/runtime/invocation/next") {
            let _ = seen.send(Seen::FirstNext(at));
            // Held open until the process is killed.
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        let (status, body) = if target == "AmazonSSM.GetParameter" {
            let answer = format!(
                r#"{{"Parameter":{{"Name":"{SECRET_PARAMETER}","Type":"SecureString","Value":"bench-secret","Version":1,"DataType":"text","ARN":"arn:aws:ssm:us-east-1:123456789012:parameter{SECRET_PARAMETER}"}}}}"#
            );
            ("200 OK", answer)
        } else {
            ("404 Not Found", "{}".to_string())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

struct Sample {
    init: Duration,
    peak_rss_kib: u64,
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn measure(dir: &Path, case: &Case) -> Sample {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("address").to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, tx));
        }
    });
    let endpoint = format!("http://{address}");
    let mut command = Command::new(dir.join(case.binary));
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("RUST_LOG", "info")
        .envs(case.env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if case.aws_endpoint {
        command.env("AWS_ENDPOINT_URL", &endpoint);
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", dir.join(case.binary).display()));
    let seen = rx.recv_timeout(Duration::from_secs(10));
    let rss = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    match seen {
        Ok(Seen::FirstNext(at)) => Sample {
            init: at - started,
            peak_rss_kib: rss,
        },
        Err(_) => panic!("{} never asked for an invocation", case.label),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("rounds: a number"))
        .unwrap_or(30);
    // target/release/examples/init-bench → target/release
    let exe = std::env::current_exe().expect("own path");
    let dir: PathBuf = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/examples")
        .to_path_buf();
    let cases = cases();
    for case in &cases {
        assert!(
            dir.join(case.binary).exists(),
            "{} is missing: cargo build --release -p els-functions --bins --examples",
            dir.join(case.binary).display()
        );
    }
    // One warm-up round (page cache), then interleaved rounds so drift hits every binary.
    for case in &cases {
        measure(&dir, case);
    }
    let mut samples: Vec<Vec<Sample>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            samples[i].push(measure(&dir, case));
        }
    }

    println!(
        "init = process start -> first GET /runtime/invocation/next; {rounds} rounds; binaries in {}",
        dir.display()
    );
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>9} {:>8} {:>12}",
        "binary", "size KiB", "min ms", "p50 ms", "p90 ms", "x hello", "peak RSS MiB"
    );
    let mut hello_p50 = None;
    for (case, s) in cases.iter().zip(&samples) {
        let mut ms: Vec<f64> = s.iter().map(|x| x.init.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let mut rss: Vec<u64> = s.iter().map(|x| x.peak_rss_kib).collect();
        rss.sort_unstable();
        let p50 = percentile(&ms, 0.5);
        let base = *hello_p50.get_or_insert(p50);
        let size = std::fs::metadata(dir.join(case.binary))
            .map(|m| m.len() / 1024)
            .unwrap_or(0);
        println!(
            "{:<34} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>8.2} {:>12.1}",
            case.label,
            size,
            ms[0],
            p50,
            percentile(&ms, 0.9),
            p50 / base,
            rss[rss.len() / 2] as f64 / 1024.0
        );
    }
}
