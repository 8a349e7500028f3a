//! The key scheduler's sections of the overhead benchmark (issue 15), each
//! runnable alone (`BENCH_ONLY=keys10k`, `BENCH_ONLY=quota`, or both,
//! comma-separated):
//!
//! * `keys10k` — gateway CPU per request with 10,000 keys of which 9,900
//!   are cooling (keys the fake answers with a per-day 429, cooled by a
//!   warm-up), against the usual 3-key pool, on the same core, alternated;
//! * `quota` — keys the fake holds to a per-minute limit, offered twice
//!   their capacity, through a gateway with `QUOTA_AWARE=true` (the
//!   default, limits learned from the first 429 of each key) and one with
//!   `QUOTA_AWARE=false` side by side: goodput against capacity, upstream
//!   calls and 429s (wasted calls), client p50/p99.

use super::*;

/// The `BENCH_ONLY` sections to run, or None for the whole benchmark.
pub(super) fn only() -> Option<Vec<String>> {
    let v = std::env::var("BENCH_ONLY").ok()?;
    Some(
        v.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// `GET /health`'s `keys` object.
async fn health_keys(addr: SocketAddr) -> Value {
    let mut s = connect(addr).await;
    s.ready().await.expect("ready");
    let req = Request::get("/health")
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = s.send_request(req).await.expect("health");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&body).expect("health json");
    v["keys"].clone()
}

/// Section: 10,000 keys, 99 % cooling, against 3 keys.
pub(super) async fn keys10k(
    rep: &mut Report,
    bin: &str,
    fake_addr: SocketAddr,
    load_dur: Duration,
) {
    rep.row(String::new());
    const N: usize = 10_000;
    let keys: Vec<String> = (0..N)
        .map(|i| {
            if i % 100 == 0 {
                format!("bench-key-{i:05}")
            } else {
                // The fake answers these with Google's per-day 429: the
                // gateway cools them until Pacific midnight.
                format!("quota-day-{i:05}")
            }
        })
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let env_file = dir.join("keys10k.env");
    // Too long for one environment variable (128 KiB): an env file.
    std::fs::write(
        &env_file,
        format!("API_KEYS='{}'\n", serde_json::to_string(&keys).unwrap()),
    )
    .unwrap();
    let (small_port, big_port) = (free_port(), free_port());
    let mut small = spawn(bin, &[], &gateway_env(fake_addr, small_port), Some(1));
    let mut env: Vec<(&str, String)> = gateway_env(fake_addr, big_port)
        .into_iter()
        .filter(|(k, _)| *k != "API_KEYS")
        .collect();
    env.push(("ENV_FILE", env_file.display().to_string()));
    let mut big = spawn(bin, &[], &env, Some(1));
    let small_addr: SocketAddr = ([127, 0, 0, 1], small_port).into();
    let big_addr: SocketAddr = ([127, 0, 0, 1], big_port).into();
    wait_health(small_addr, "/health").await;
    wait_health(big_addr, "/health").await;
    let native = |name, addr| Target {
        name,
        addr,
        path: "/v1beta/models/gemini-2.5-flash:generateContent".into(),
        headers: vec![
            ("x-goog-api-key", TOKEN.into()),
            ("content-type", "application/json".into()),
        ],
        body: Bytes::from_static(
            br#"{"contents":[{"role":"user","parts":[{"text":"Hello, how are you?"}]}]}"#,
        ),
    };
    let (t_small, t_big) = (
        native("3 keys", small_addr),
        native("10,000 keys", big_addr),
    );
    // Warm-up: traffic until every per-day key has had its 429 and cools.
    let t0 = Instant::now();
    let cooling = loop {
        let k = health_keys(big_addr).await;
        let cooling = k["cooling"].as_u64().unwrap_or(0);
        if cooling >= (N - N / 100) as u64 || t0.elapsed() > Duration::from_secs(300) {
            break cooling;
        }
        closed_loop(&t_big, 16, Duration::from_millis(500)).await;
    };
    let warm = t0.elapsed();
    closed_loop(&t_small, 16, Duration::from_millis(500)).await;
    // Measured: the two alternated, three rounds each, on the same core.
    let rounds = if quick() { 1 } else { 3 };
    let (pid_small, pid_big) = (pid(&small), pid(&big));
    let mut sums = [(0u64, 0u64, 0.0f64, 0u64); 2]; // (ticks, requests, req/s, errors)
    for _ in 0..rounds {
        for (k, (t, p)) in [(&t_small, pid_small), (&t_big, pid_big)]
            .into_iter()
            .enumerate()
        {
            let before = cpu_ticks(p);
            let (_, rps, n, errors) = closed_loop(t, 64, load_dur).await;
            sums[k].0 += cpu_ticks(p) - before;
            sums[k].1 += n;
            sums[k].2 += rps / rounds as f64;
            sums[k].3 += errors;
        }
    }
    let rss = rss_kib(pid_big);
    let cpu = |s: (u64, u64, f64, u64)| s.0 as f64 * 10_000.0 / s.1.max(1) as f64;
    let (cpu_small, cpu_big) = (cpu(sums[0]), cpu(sums[1]));
    let ratio = cpu_big / cpu_small.max(0.001);
    rep.row(format!(
        "{:<40} {:>10} {:>12} {:>8}",
        "key pool (native call, 64 clients)", "req/s", "gw CPU/req", "errors"
    ));
    for (t, s) in [(&t_small, sums[0]), (&t_big, sums[1])] {
        rep.row(format!(
            "{:<40} {:>10.0} {:>11.1}µs {:>8}",
            if t.name == "3 keys" {
                "3 keys".to_string()
            } else {
                format!("10,000 keys, {cooling} cooling")
            },
            s.2,
            cpu(s),
            s.3
        ));
    }
    rep.row(format!(
        "10,000 keys: warm-up (every per-day key's first 429) {:.1} s; gateway RSS {:.1} MiB; CPU/req {:+.1} % against 3 keys",
        warm.as_secs_f64(),
        rss as f64 / 1024.0,
        (ratio - 1.0) * 100.0
    ));
    rep.target(
        "10,000 keys, 99 % cooling: gateway CPU per request within 10 % of 3 keys",
        ratio <= 1.10,
        format!(
            "{cpu_big:.1}µs vs {cpu_small:.1}µs ({:+.1} %)",
            (ratio - 1.0) * 100.0
        ),
    );
    rep.json.insert(
        "keys10k".into(),
        json!({"keys": N, "cooling": cooling, "warmup_s": warm.as_secs_f64(), "rss_kib": rss,
               "small": {"cpu_us": cpu_small, "rps": sums[0].2, "requests": sums[0].1, "errors": sums[0].3},
               "big": {"cpu_us": cpu_big, "rps": sums[1].2, "requests": sums[1].1, "errors": sums[1].3}}),
    );
    for c in [&mut small, &mut big] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// One gateway of the quota section.
struct QuotaRun {
    label: &'static str,
    keys: Vec<String>,
    addr: SocketAddr,
    child: Child,
    /// (status, µs) of every request.
    answers: Vec<(u16, u64)>,
}

/// How many calls the fake saw with `key`.
async fn fake_count(fake: SocketAddr, key: &str) -> u64 {
    let mut s = connect(fake).await;
    s.ready().await.expect("ready");
    let req = Request::get(format!("/__fake/count/{key}"))
        .header("host", fake.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = s.send_request(req).await.expect("count");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&body).expect("count json");
    v["count"].as_u64().unwrap_or(0)
}

/// `n` arrival times over `window` with exponential gaps (a Poisson
/// process; fixed seed, so every run offers the same schedule), scaled to
/// end at the window's end.
fn arrivals(n: usize, window: Duration) -> Vec<Duration> {
    let mut seed = 0x5EED_u64;
    let mut next = || {
        // splitmix64 → a uniform in (0, 1].
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    };
    let gaps: Vec<f64> = (0..n).map(|_| -next().ln()).collect();
    let total: f64 = gaps.iter().sum();
    let mut t = 0.0;
    gaps.iter()
        .map(|g| {
            let at = window.mul_f64(t / total);
            t += g;
            at
        })
        .collect()
}

/// One request on a fresh connection: (status, µs).
async fn one_fresh(t: Target) -> (u16, u64) {
    let start = Instant::now();
    let mut s = connect(t.addr).await;
    let status = one(&mut s, &t).await;
    (status.as_u16(), start.elapsed().as_micros() as u64)
}

/// Section: per-minute limits at twice the capacity, QUOTA_AWARE on and off.
pub(super) async fn quota(rep: &mut Report, bin: &str, fake_addr: SocketAddr) {
    rep.row(String::new());
    // 4 keys at 60 requests/minute for `secs` seconds (whole minutes): the
    // capacity is every key's limit once per minute.
    let (n_keys, rpm) = (4usize, 60u64);
    let secs: u64 = std::env::var("BENCH_QUOTA_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick() { 60 } else { 120 })
        .max(60)
        / 60
        * 60;
    let capacity = n_keys as u64 * rpm * secs / 60;
    let offered = 2 * capacity;
    // Pro: no built-in free-tier default for it (flash's 20 a day would
    // bind once a 429 marks the keys free tier); the limit is learned.
    let model = "gemini-2.5-pro";
    let tag = std::process::id();
    let mut runs: Vec<QuotaRun> = [("QUOTA_AWARE=true", "true"), ("QUOTA_AWARE=false", "false")]
        .into_iter()
        .map(|(label, aware)| {
            let keys: Vec<String> = (0..n_keys)
                .map(|k| format!("rpm{rpm}-{aware}-{tag}-key{k}-00000"))
                .collect();
            let port = free_port();
            let mut env = gateway_env(fake_addr, port);
            env.retain(|(k, _)| *k != "API_KEYS");
            env.push(("API_KEYS", serde_json::to_string(&keys).unwrap()));
            env.push(("QUOTA_AWARE", aware.into()));
            QuotaRun {
                label,
                keys,
                addr: ([127, 0, 0, 1], port).into(),
                child: spawn(bin, &[], &env, Some(1)),
                answers: Vec::new(),
            }
        })
        .collect();
    for r in &runs {
        wait_health(r.addr, "/health").await;
    }
    let mut before = Vec::new();
    for r in &runs {
        let mut c = 0;
        for k in &r.keys {
            c += fake_count(fake_addr, k).await;
        }
        before.push(c);
    }
    let target = |addr| Target {
        name: "quota",
        addr,
        path: format!("/v1beta/models/{model}:generateContent"),
        headers: vec![
            ("x-goog-api-key", TOKEN.into()),
            ("content-type", "application/json".into()),
        ],
        body: Bytes::from_static(br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#),
    };
    // Open loop: `offered` requests to each gateway at the same random
    // (Poisson) arrival times over the window.
    let start = tokio::time::Instant::now();
    let mut tasks: Vec<Vec<tokio::task::JoinHandle<(u16, u64)>>> = vec![Vec::new(), Vec::new()];
    for at in arrivals(offered as usize, Duration::from_secs(secs)) {
        tokio::time::sleep_until(start + at).await;
        for (i, r) in runs.iter().enumerate() {
            tasks[i].push(tokio::spawn(one_fresh(target(r.addr))));
        }
    }
    for (i, list) in tasks.into_iter().enumerate() {
        for t in list {
            runs[i].answers.push(t.await.expect("request"));
        }
    }
    rep.row(format!(
        "quota: {n_keys} keys × {rpm} requests/minute (fake-enforced, {model}), {offered} requests (Poisson arrivals) in {secs} s = 2× the capacity of {capacity}"
    ));
    rep.row(format!(
        "{:<20} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "", "goodput", "of cap.", "upstream", "up. 429s", "gw 429s", "p50", "p99"
    ));
    let mut out = serde_json::Map::new();
    for (i, r) in runs.iter_mut().enumerate() {
        let mut upstream = 0;
        for k in &r.keys {
            upstream += fake_count(fake_addr, k).await;
        }
        let upstream = upstream - before[i];
        let ok = r.answers.iter().filter(|(s, _)| *s == 200).count() as u64;
        let refused = r.answers.iter().filter(|(s, _)| *s == 429).count() as u64;
        let wasted = upstream.saturating_sub(ok);
        let l = lat(r.answers.iter().map(|(_, us)| *us).collect());
        let share = ok as f64 * 100.0 / capacity as f64;
        rep.row(format!(
            "{:<20} {:>9} {:>8.1}% {:>10} {:>10} {:>9} {:>9} {:>9}",
            r.label,
            ok,
            share,
            upstream,
            wasted,
            refused,
            fmt_us(l.p50),
            fmt_us(l.p99)
        ));
        out.insert(
            r.label.into(),
            json!({"goodput": ok, "capacity": capacity, "offered": offered, "upstream_calls": upstream,
                   "upstream_429s": wasted, "client_429s": refused, "p50_us": l.p50, "p99_us": l.p99}),
        );
        if i == 0 {
            rep.target(
                "quota: goodput ≥ 98 % of capacity (QUOTA_AWARE=true)",
                share >= 98.0,
                format!("{share:.1} %"),
            );
            rep.target(
                "quota: upstream 429s ≤ number of keys (QUOTA_AWARE=true)",
                wasted <= n_keys as u64,
                format!("{wasted} (keys: {n_keys})"),
            );
        }
    }
    rep.row("(upstream 429s = upstream calls that served nothing: the wasted calls)".into());
    rep.json.insert("quota".into(), Value::Object(out));
    for r in &mut runs {
        let _ = r.child.kill();
        let _ = r.child.wait();
    }
}
