//! Unit tests of the configuration parser.

use super::hints::{distance, near_miss};
use super::*;

fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_map(&map)
}

#[test]
fn defaults_match_the_python_gateway() {
    let c = cfg(&[("API_KEYS", "k1"), ("ALLOWED_TOKENS", "[\"sk-1\"]")]).unwrap();
    assert!(!c.demo);
    assert_eq!(c.port, 8000);
    assert_eq!(c.host, "0.0.0.0");
    assert_eq!(
        c.base_url,
        "https://generativelanguage.googleapis.com/v1beta"
    );
    assert_eq!(c.max_retries, 3);
    assert_eq!(c.max_failures, 10);
    assert_eq!(c.time_out, Duration::from_secs(300));
    assert_eq!(c.cors_origins, vec!["*"]);
    assert_eq!(c.max_body_bytes, 20 * 1024 * 1024);
}

#[test]
fn lists_accept_json_and_commas() {
    assert_eq!(parse_list(r#"["k1","k2"]"#).unwrap(), vec!["k1", "k2"]);
    assert_eq!(parse_list("k1, k2,,k1").unwrap(), vec!["k1", "k2"]);
    assert_eq!(parse_list("[k1,k2]").unwrap(), vec!["k1", "k2"]);
    assert_eq!(parse_list("\"k1\",\"k2\"").unwrap(), vec!["k1", "k2"]);
    assert!(parse_list("[1,2]").is_err());
}

#[test]
fn refuses_to_start_open_without_consent() {
    let e = cfg(&[("API_KEYS", "k1")]).unwrap_err();
    assert_eq!(e.var, "ALLOWED_TOKENS");
    assert!(cfg(&[("API_KEYS", "k1"), ("ALLOW_ANONYMOUS", "true")]).is_ok());
    assert!(cfg(&[]).unwrap().demo, "no keys means demo mode");
}

#[test]
fn malformed_values_name_the_variable_and_hide_secrets() {
    let e = cfg(&[("ALLOWED_TOKENS", "sk-1"), ("PORT", "eighty")]).unwrap_err();
    assert_eq!(e.var, "PORT");
    let e = cfg(&[("ALLOWED_TOKENS", r#"["sk-secret-123", 5]"#)]).unwrap_err();
    assert_eq!(e.var, "ALLOWED_TOKENS");
    assert!(!e.to_string().contains("sk-secret-123"));
    let e = cfg(&[("ALLOWED_TOKENS", "sk"), ("SAFETY_SETTINGS", "{")]).unwrap_err();
    assert_eq!(e.var, "SAFETY_SETTINGS");
    let e = cfg(&[("ALLOWED_TOKENS", "sk"), ("BASE_URL", "ftp://x")]).unwrap_err();
    assert_eq!(e.var, "BASE_URL");
}

#[test]
fn seen_variables_are_masked() {
    let c = cfg(&[
        ("ALLOWED_TOKENS", "sk-abcdefgh12345678"),
        ("API_KEYS", r#"["AIzaSyA1234567890abcdefghijklmnopqrstu"]"#),
    ])
    .unwrap();
    let shown = format!("{:?}", c.seen);
    assert!(!shown.contains("AIzaSyA1234567890abcdefghijklmnopqrstu"));
    assert!(!shown.contains("sk-abcdefgh12345678"));
    assert!(shown.contains("rstu"));
}

#[test]
fn the_admin_is_auth_token_or_the_first_allowed_token() {
    let c = cfg(&[("API_KEYS", "k1"), ("ALLOWED_TOKENS", "sk-1,sk-2,sk-3")]).unwrap();
    assert_eq!(c.admin_tokens(), vec!["sk-1"]);
    let c = cfg(&[
        ("API_KEYS", "k1"),
        ("ALLOWED_TOKENS", "sk-1,sk-2"),
        ("AUTH_TOKEN", "adm"),
    ])
    .unwrap();
    assert_eq!(c.admin_tokens(), vec!["adm"]);
    assert_eq!(c.verify_max_keys, 50);
    let e = cfg(&[
        ("API_KEYS", "k1"),
        ("ALLOWED_TOKENS", "sk"),
        ("VERIFY_MAX_KEYS", "0"),
    ])
    .unwrap_err();
    assert_eq!(e.var, "VERIFY_MAX_KEYS");
}

#[test]
fn space_host_turns_into_a_keepalive_url() {
    let c = cfg(&[
        ("API_KEYS", "k1"),
        ("ALLOWED_TOKENS", "sk"),
        ("SPACE_HOST", "me-gw.hf.space"),
    ])
    .unwrap();
    assert_eq!(
        c.keepalive_url.as_deref(),
        Some("https://me-gw.hf.space/health")
    );
    let c = cfg(&[
        ("API_KEYS", "k1"),
        ("ALLOWED_TOKENS", "sk"),
        ("CHECK_INTERVAL_HOURS", "0"),
    ])
    .unwrap();
    assert!(c.check_interval.is_none());
}

#[test]
fn check_cron_is_validated_at_start_up() {
    assert_eq!(with(&[]).unwrap().check_cron, None, "off by default");
    for good in ["0 0 */6 * * *", "*/1 * * * * *", "0 30 4 * * Mon-Fri"] {
        let c = with(&[("CHECK_CRON", good)]).unwrap();
        assert_eq!(c.check_cron.as_deref(), Some(good));
    }
    for bad in ["0 * * * *", "every hour", "0 0 25 * * *", "0 0 0 30 2 *"] {
        let e = with(&[("CHECK_CRON", bad)]).unwrap_err();
        assert_eq!(e.var, "CHECK_CRON", "{bad}");
        let line = e.to_string();
        assert!(
            line.starts_with("configuration error: CHECK_CRON: "),
            "{line}"
        );
        assert!(!line.contains('\n'), "one line: {line}");
    }
}

/// A working minimum plus `pairs`.
fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut all = vec![("API_KEYS", "k1"), ("ALLOWED_TOKENS", "sk-1")];
    all.retain(|(k, _)| !pairs.iter().any(|(p, _)| p == k));
    all.extend_from_slice(pairs);
    cfg(&all)
}

#[test]
fn demo_mode_only_when_nothing_is_set_or_asked_for() {
    assert!(cfg(&[]).unwrap().demo);
    // Tokens without keys: a mistake, not a demo.
    let e = cfg(&[("ALLOWED_TOKENS", "sk-1")]).unwrap_err();
    assert_eq!(e.var, "API_KEYS");
    assert!(e.problem.contains("DEMO=true"), "{e}");
    // DEMO=true keeps the configured tokens.
    let c = cfg(&[("DEMO", "true"), ("ALLOWED_TOKENS", "sk-1")]).unwrap();
    assert!(c.demo);
    assert_eq!(c.allowed_tokens, vec!["sk-1"]);
    // DEMO=false: never demo.
    assert_eq!(cfg(&[("DEMO", "false")]).unwrap_err().var, "API_KEYS");
    assert!(!with(&[]).unwrap().demo);
    assert!(with(&[("DEMO", "yes")]).unwrap().demo);
}

#[test]
fn a_misspelled_variable_is_named() {
    for typo in ["API_KEY", "api_keys", "APIKEYS", "Api_Keys", "API_KEYS_"] {
        let e = cfg(&[(typo, "AIza-secret-value-1234"), ("ALLOWED_TOKENS", "sk-1")]).unwrap_err();
        assert_eq!(e.var, "API_KEYS", "{typo}");
        assert!(
            e.problem
                .contains(&format!("{typo} is set: did you mean API_KEYS?")),
            "{e}"
        );
        assert!(!e.to_string().contains("AIza-secret-value-1234"));
        // Alone, a near miss does not fall back to demo mode either.
        assert_eq!(cfg(&[(typo, "AIza-x")]).unwrap_err().var, "API_KEYS");
    }
    let e = cfg(&[("GEMINI_API_KEY", "x"), ("ALLOWED_TOKENS", "sk")]).unwrap_err();
    assert!(e.problem.contains("GEMINI_API_KEY is set"), "{e}");
    // A GEMINI_API_KEY in a developer's shell does not block the demo.
    assert!(cfg(&[("GEMINI_API_KEY", "x")]).unwrap().demo);
    let e = cfg(&[("API_KEYS", "k1"), ("ALLOWED_TOKEN", "sk")]).unwrap_err();
    assert_eq!(e.var, "ALLOWED_TOKENS");
    assert!(e.problem.contains("ALLOWED_TOKEN is set"), "{e}");
    // Other near misses are warnings; unrelated names are not.
    let c = with(&[
        ("TIMEOUT", "5"),
        ("LOGLEVEL", "debug"),
        ("HOME", "/root"),
        ("HOSTNAME", "box"),
        ("PATH", "/bin"),
        ("TERM", "xterm"),
        ("SPACE_ID", "me/gw"),
    ])
    .unwrap();
    let notes: Vec<&str> = c.notes.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].starts_with("LOGLEVEL") && notes[0].ends_with("LOG_LEVEL?"));
    assert!(notes[1].starts_with("TIMEOUT") && notes[1].ends_with("TIME_OUT?"));
}

#[test]
fn edit_distance() {
    assert_eq!(distance("API_KEY", "API_KEYS"), 1);
    assert_eq!(distance("APIKEY", "API_KEYS"), 2);
    assert_eq!(distance("HOME", "HOST"), 2);
    assert_eq!(distance("", "ABC"), 3);
    assert_eq!(near_miss("HOME"), None);
    assert_eq!(near_miss("PORTS"), Some("PORT"));
    assert_eq!(near_miss("PORT"), None);
    assert_eq!(near_miss(&"A".repeat(100)), None);
}

#[test]
fn one_pair_of_outer_quotes_is_removed() {
    assert_eq!(unquote(r#"'["k1","k2"]'"#), r#"["k1","k2"]"#);
    assert_eq!(unquote(r#""8000""#), "8000");
    assert_eq!(unquote(r#""k1","k2""#), r#""k1","k2""#);
    assert_eq!(unquote("'"), "'");
    let c = with(&[
        ("API_KEYS", r#"'["k1","k2"]'"#),
        ("ALLOWED_TOKENS", r#""sk-a,sk-b""#),
        ("PORT", "'8001'"),
        ("VERIFY_ON_START", "\"true\""),
        ("SAFETY_SETTINGS", r#"'[{"category":"c","threshold":"t"}]'"#),
    ])
    .unwrap();
    assert_eq!(c.api_keys, vec!["k1", "k2"]);
    assert_eq!(c.allowed_tokens, vec!["sk-a", "sk-b"]);
    assert_eq!(c.port, 8001);
    assert!(c.verify_on_start);
    assert!(c.translate.safety_settings.is_some());
    // Quotes around each item still work.
    assert_eq!(
        with(&[("API_KEYS", r#""k1","k2""#)]).unwrap().api_keys,
        vec!["k1", "k2"]
    );
}

#[test]
fn an_item_holding_separators_is_refused() {
    for (var, v) in [
        ("API_KEYS", r#"["k1 k2"]"#),
        ("API_KEYS", "k1 k2"),
        ("API_KEYS", r#"["k1,k2"]"#),
        ("API_KEYS", r#"'["k1","k2"]"#),
        ("ALLOWED_TOKENS", "sk-1\tsk-2"),
        ("BACKUP_API_KEYS", r#"["b1","b 2"]"#),
        ("TRUSTED_API_KEYS", r#"["t{1}"]"#),
        ("THINKING_MODELS", r#"["gemini 2.5"]"#),
        ("CORS_ORIGINS", r#"["https://a.com https://b.com"]"#),
    ] {
        let e = with(&[(var, v)]).unwrap_err();
        assert_eq!(e.var, var, "{v}");
        assert!(e.problem.starts_with("item "), "{e}");
        assert!(!e.problem.contains("k1"), "{e}");
    }
    let e = with(&[("API_KEYS", r#"["k1","k2"]'"#)]).unwrap_err();
    assert_eq!(e.var, "API_KEYS");
}

#[test]
fn a_base_url_gets_its_version() {
    let c = with(&[("BASE_URL", "https://generativelanguage.googleapis.com")]).unwrap();
    assert_eq!(
        c.base_url,
        "https://generativelanguage.googleapis.com/v1beta"
    );
    assert!(!c.base_url_unversioned);
    assert_eq!(c.notes.len(), 1);
    assert!(c.notes[0].1.contains("/v1beta"), "{:?}", c.notes);
    let c = with(&[("BASE_URL", "http://127.0.0.1:9/")]).unwrap();
    assert_eq!(c.base_url, "http://127.0.0.1:9/v1beta");
    for ok in [
        "https://x.dev/v1",
        "https://x.dev/p/v1alpha/",
        "https://x.dev/v1beta",
    ] {
        let c = with(&[("BASE_URL", ok)]).unwrap();
        assert!(!c.base_url_unversioned && c.notes.is_empty(), "{ok}");
        assert_eq!(c.not_found_hint(404), None);
    }
    let c = with(&[("BASE_URL", "https://proxy.example/gemini")]).unwrap();
    assert!(c.base_url_unversioned);
    assert_eq!(c.base_url, "https://proxy.example/gemini");
    assert_eq!(c.notes[0].0, crate::log::Level::Warn);
    assert!(c.not_found_hint(404).unwrap().contains("BASE_URL"));
    assert_eq!(c.not_found_hint(400), None);
}

#[test]
fn numbers_name_their_range() {
    let e = with(&[("PORT", "99999")]).unwrap_err();
    assert!(e.problem.contains("1–65535"), "{e}");
    assert!(with(&[("PORT", "0")]).is_ok(), "0 picks a free port");
    for (var, v, range) in [
        ("MAX_CONNECTIONS", "0", "1–1000000"),
        ("MAX_HEADERS", "10001", "1–10000"),
        ("MAX_HEADER_BYTES", "1", "1024–16777216"),
        ("MAX_RETRIES", "-1", "0–4294967295"),
        ("TIME_OUT", "-1", "0–1000000000"),
        ("CHECK_INTERVAL_HOURS", "1e300", "0–1000000"),
        ("KEEPALIVE_MINUTES", "NaN", "0–10000000"),
        ("MAX_BODY_BYTES", "lots", "≥ 0"),
    ] {
        let e = with(&[(var, v)]).unwrap_err();
        assert_eq!(e.var, var);
        assert!(e.problem.contains(range), "{e}");
        assert!(!e.problem.contains("non-negative"), "{e}");
    }
}

// ---- the table of settings, stored overrides ----

use super::table::{Apply, SETTINGS, carry_fixed, find, mask_url};
use std::collections::BTreeMap;

fn value(c: &Config, name: &str) -> Option<String> {
    (find(name).unwrap().value)(c)
}

fn stored(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_table_has_one_row_per_variable_in_order() {
    let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
    assert_eq!(names, VARIABLES);
    for s in SETTINGS {
        assert!(!s.description.is_empty(), "{}", s.name);
        if let Apply::Restart(why) = s.apply {
            assert!(!why.is_empty(), "{}", s.name);
        }
    }
    // What the issue names as restart-only is restart-only; keys have their API.
    for name in ["PORT", "HOST", "REDIS_URL", "DATA_DIR"] {
        assert!(
            matches!(find(name).unwrap().apply, Apply::Restart(_)),
            "{name}"
        );
    }
    assert_eq!(find("API_KEYS").unwrap().apply, Apply::Keys);
    for name in [
        "ALLOWED_TOKENS",
        "AUTH_TOKEN",
        "MAX_RETRIES",
        "COOLDOWN_SECONDS",
        "TIME_OUT",
        "KEY_SELECTION",
        "MAX_FAILURES",
        "SHOW_THINKING_PROCESS",
        "SAFETY_SETTINGS",
        "LOG_LEVEL",
    ] {
        assert!(find(name).unwrap().live(), "{name}");
    }
}

#[test]
fn secret_values_are_only_shown_masked() {
    let long = |p: &str| format!("{p}-{}", "s3cr3t".repeat(6));
    let (k, t, a, b, tr, e) = (
        long("key"),
        long("tok"),
        long("adm"),
        long("bak"),
        long("tru"),
        long("enc"),
    );
    let vx = long("vtx");
    let url = format!(
        "rediss://default:{}@db.example:6379/0?password=x",
        long("pw")
    );
    let proxies = format!("[\"http://bob:{}@10.0.0.5:3128\"]", long("px"));
    let c = with(&[
        ("API_KEYS", k.as_str()),
        ("ALLOWED_TOKENS", t.as_str()),
        ("AUTH_TOKEN", a.as_str()),
        ("BACKUP_API_KEYS", b.as_str()),
        ("TRUSTED_API_KEYS", tr.as_str()),
        ("VERTEX_API_KEYS", vx.as_str()),
        ("ENCRYPTION_KEY", e.as_str()),
        ("REDIS_URL", url.as_str()),
        ("PROXIES", proxies.as_str()),
    ])
    .unwrap();
    let secrets = [&k, &t, &a, &b, &tr, &vx, &e, &long("pw"), &long("px")];
    let mut shown = 0;
    for s in SETTINGS.iter().filter(|s| s.secret) {
        let v = (s.value)(&c).unwrap();
        for secret in secrets {
            assert!(!v.contains(secret.as_str()), "{}: {v}", s.name);
        }
        // A proxy URL shows its password as `****` (`http://bob:****@host:port`).
        assert!(v.contains('…') || v.contains(":****@"), "{}: {v}", s.name);
        shown += 1;
    }
    assert_eq!(shown, 9);
    assert_eq!(
        value(&c, "PROXIES").unwrap(),
        r#"["http://bob:****@10.0.0.5:3128"]"#
    );
    assert_eq!(
        value(&c, "REDIS_URL").unwrap(),
        "rediss://default:pw-s…cr3t@db.example:6379/0"
    );
    assert_eq!(mask_url("redis://localhost:6379"), "redis://localhost:6379");
    assert_eq!(
        mask_url("redis://:hunter22long@h/1"),
        "redis://:hunt…ong@h/1".replace("hunt…ong", &crate::keys::mask("hunter22long"))
    );
}

#[test]
fn shown_values_read_back_to_the_same_setting() {
    let c = with(&[
        ("TIME_OUT", "2.5"),
        ("KEY_SELECTION", "least-used"),
        ("LOG_LEVEL", "debug"),
        ("CORS_ORIGINS", "https://a.dev,https://b.dev"),
        ("THINKING_BUDGET_MAP", r#"{"gemini-2.5-pro":1024}"#),
        ("SAFETY_SETTINGS", r#"[{"category":"c","threshold":"t"}]"#),
        ("SEARCH_MODELS", "m1,m2"),
        ("CHECK_INTERVAL_HOURS", "0.5"),
        ("KEEPALIVE_MINUTES", "0"),
        ("CHECK_CRON", "0 0 */6 * * *"),
        ("SPACE_HOST", "me.hf.space"),
        ("DATA_DIR", "/data"),
    ])
    .unwrap();
    for s in SETTINGS.iter().filter(|s| !s.secret) {
        let Some(v) = (s.value)(&c) else { continue };
        let again = with(&[
            ("TIME_OUT", "2.5"),
            ("CHECK_CRON", "0 0 */6 * * *"),
            ("SPACE_HOST", "me.hf.space"),
            ("DATA_DIR", "/data"),
            (s.name, v.as_str()),
        ])
        .unwrap_or_else(|e| panic!("{}={v}: {e}", s.name));
        assert_eq!((s.value)(&again), Some(v.clone()), "{}", s.name);
    }
    assert_eq!(value(&c, "KEY_SELECTION").unwrap(), "least_used");
    assert_eq!(value(&c, "TIME_OUT").unwrap(), "2.5");
    assert_eq!(value(&c, "CHECK_INTERVAL_HOURS").unwrap(), "0.5");
    assert_eq!(value(&c, "AUTH_TOKEN"), None, "unset and no default");
}

/// A valid value different from the default, for each setting that cannot
/// change while running.
const FIXED_ALTERNATIVES: &[(&str, &str)] = &[
    ("API_KEYS", "alt-key-000000009"),
    ("HOST", "127.0.0.1"),
    ("PORT", "9001"),
    ("BASE_URL", "http://x.dev/v1"),
    ("UPSTREAM_PROTOCOL", "http1"),
    ("UPSTREAM_STREAMS_PER_CONNECTION", "7"),
    ("CHECK_INTERVAL_HOURS", "5"),
    ("CHECK_CRON", "0 0 * * * *"),
    ("VERIFY_ON_START", "true"),
    ("KEEPALIVE_URL", "http://k.dev/"),
    ("KEEPALIVE_MINUTES", "7"),
    ("SPACE_HOST", "a.hf.space"),
    ("BACKUP_API_KEYS", "alt-backup-0000009"),
    ("VERTEX_API_KEYS", "alt-vertex-0000009"),
    ("CLIENT_TIMEOUT", "3"),
    ("MAX_CONNECTIONS", "5"),
    ("MAX_HEADER_BYTES", "2048"),
    ("MAX_HEADERS", "7"),
    ("DEMO", "true"),
    ("ENV_FILE", "x.env"),
    ("DATA_DIR", "/tmp/x"),
    ("REDIS_URL", "redis://h"),
    ("REDIS_PREFIX", "p:"),
    ("ENCRYPTION_KEY", "alt-encryption-key-9"),
    ("PROXIES", "http://127.0.0.1:3128"),
    ("PROXIES_PER_KEY", "false"),
    ("PROXY_CA_FILE", "/etc/proxy-ca.pem"),
];

#[test]
fn settings_that_need_a_restart_keep_their_running_value() {
    let old = with(&[]).unwrap();
    for s in SETTINGS.iter().filter(|s| !s.live()) {
        let alt = FIXED_ALTERNATIVES
            .iter()
            .find(|(n, _)| *n == s.name)
            .unwrap_or_else(|| panic!("{}: add an alternative value (and carry it)", s.name))
            .1;
        let parsed = with(&[(s.name, alt)]).unwrap();
        if !matches!(s.name, "SPACE_HOST" | "ENV_FILE") {
            assert_ne!((s.value)(&parsed), (s.value)(&old), "{}", s.name);
        }
        if !matches!(s.name, "SPACE_HOST" | "ENV_FILE") {
            let mut rebuilt = parsed.clone();
            carry_fixed(&mut rebuilt, &old);
            assert_eq!((s.value)(&rebuilt), (s.value)(&old), "{}", s.name);
        }
        let via = old.with_stored(&stored(&[(s.name, alt)])).unwrap();
        assert_eq!((s.value)(&via), (s.value)(&old), "{}", s.name);
    }
}

#[test]
fn stored_overrides_win_over_env_which_wins_over_defaults() {
    let env: HashMap<String, String> = [
        ("API_KEYS", "k1"),
        ("ALLOWED_TOKENS", "sk-1"),
        ("MAX_RETRIES", "5"),
        ("TIME_OUT", "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let s = stored(&[("MAX_RETRIES", "7"), ("COOLDOWN_SECONDS", "9")]);
    let c = with_overrides(&env, &s).unwrap();
    assert_eq!(c.max_retries, 7, "stored > env");
    assert_eq!(c.cooldown, Duration::from_secs(9), "stored > default");
    assert_eq!(c.time_out, Duration::from_secs(10), "env > default");
    assert_eq!(c.verify_max_keys, 50, "default");
    let source = |n: &str| find(n).unwrap().source(&c);
    assert_eq!(source("MAX_RETRIES"), "stored");
    assert_eq!(source("COOLDOWN_SECONDS"), "stored");
    assert_eq!(source("TIME_OUT"), "env");
    assert_eq!(source("VERIFY_MAX_KEYS"), "default");
    assert!(c.notes.is_empty(), "{:?}", c.notes);

    // A bad stored value, a restart-only or unknown name: left out with a
    // warning, the good overrides still applied; the gateway starts.
    let s = stored(&[
        ("MAX_RETRIES", "-1"),
        ("PORT", "1"),
        ("NOT_A_SETTING", "x"),
        ("COOLDOWN_SECONDS", "9"),
    ]);
    let c = with_overrides(&env, &s).unwrap();
    assert_eq!(c.max_retries, 5, "the env's value");
    assert_eq!(c.port, 8000);
    assert_eq!(c.cooldown, Duration::from_secs(9));
    assert_eq!(c.sources.stored, stored(&[("COOLDOWN_SECONDS", "9")]));
    let notes: Vec<&str> = c.notes.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("MAX_RETRIES: expected")),
        "{notes:?}"
    );
    // A bad environment is still an error.
    let mut bad = env.clone();
    bad.insert("TIME_OUT".into(), "soon".into());
    assert_eq!(with_overrides(&bad, &s).unwrap_err().var, "TIME_OUT");
}

#[test]
fn with_stored_is_the_start_up_parser() {
    let c = with(&[]).unwrap();
    let e = c
        .with_stored(&stored(&[
            ("COOLDOWN_SECONDS", "1"),
            ("MAX_RETRIES", "many"),
        ]))
        .unwrap_err();
    let direct = with(&[("COOLDOWN_SECONDS", "1"), ("MAX_RETRIES", "many")]).unwrap_err();
    assert_eq!(e, direct);
    assert_eq!(e.var, "MAX_RETRIES");
    // Reverting: an empty map is the environment again.
    let c2 = c.with_stored(&stored(&[("MAX_RETRIES", "0")])).unwrap();
    assert_eq!(c2.max_retries, 0);
    assert_eq!(c2.with_stored(&BTreeMap::new()).unwrap().max_retries, 3);
    // A pinned value (demo mode) survives a rebuild.
    let mut demo = cfg(&[]).unwrap();
    demo.allowed_tokens = vec!["sk-demo".into()];
    demo.pin("ALLOWED_TOKENS", "sk-demo".into());
    demo.api_keys = vec!["demo-key-1".into()];
    demo.pin("API_KEYS", "demo-key-1".into());
    let rebuilt = demo.with_stored(&stored(&[("MAX_RETRIES", "1")])).unwrap();
    assert_eq!(rebuilt.allowed_tokens, vec!["sk-demo"]);
    assert!(rebuilt.demo);
}

#[test]
fn live_changes_are_all_or_nothing() {
    use super::live::{Live, Refusal};
    let live = Live::new(with(&[]).unwrap());
    let set = |pairs: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    };
    let mut tuned = 0;
    let names = live
        .change(
            &set(&[("MAX_RETRIES", Some("0")), ("TIME_OUT", Some("5"))]),
            |old, new| {
                assert_eq!(old.max_retries, 3);
                assert_eq!(new.max_retries, 0);
                tuned += 1;
            },
        )
        .unwrap();
    assert_eq!((names, tuned), (vec!["MAX_RETRIES", "TIME_OUT"], 1));
    assert_eq!(live.load().max_retries, 0);
    assert_eq!(live.load().time_out, Duration::from_secs(5));

    // One bad value: nothing applied, the parser's own line.
    let e = live
        .change(
            &set(&[("COOLDOWN_SECONDS", Some("1")), ("MAX_RETRIES", Some("x"))]),
            |_, _| unreachable!(),
        )
        .unwrap_err();
    let direct = with(&[("MAX_RETRIES", "x")]).unwrap_err();
    assert_eq!(e, Refusal::Invalid(direct.clone()));
    assert_eq!(e.message(), direct.to_string());
    assert_eq!(live.load().cooldown, Duration::from_secs(60));

    let refuse = |name: &str| {
        live.change(&set(&[(name, Some("1"))]), |_, _| {})
            .unwrap_err()
    };
    assert_eq!(refuse("PORT").name(), "PORT");
    assert!(
        refuse("PORT")
            .message()
            .contains("cannot change while running")
    );
    assert!(
        refuse("PORT")
            .message()
            .ends_with("set it in the environment and restart")
    );
    assert!(refuse("API_KEYS").message().contains("/admin/keys"));
    assert_eq!(
        refuse("max_retries").message(),
        "max_retries is not a setting of this gateway; did you mean MAX_RETRIES?"
    );
    assert_eq!(refuse(&"Z".repeat(500)).name().len(), 64, "bounded");

    // Revert: back to the environment (here the default).
    live.change(&set(&[("MAX_RETRIES", None)]), |_, _| {})
        .unwrap();
    assert_eq!(live.load().max_retries, 3);
    assert_eq!(live.load().time_out, Duration::from_secs(5));
    let now = live.load_full();
    let stored: Vec<&String> = now.sources.stored.keys().collect();
    assert_eq!(stored, ["TIME_OUT"]);
}

#[test]
fn quota_settings_parse_and_refuse_with_the_variable_named() {
    let base = [("API_KEYS", "k1"), ("ALLOWED_TOKENS", "[\"sk-1\"]")];
    let c = cfg(&base).unwrap();
    assert!(c.quota.aware && !c.quota.free && c.quota.configured.is_empty());
    assert_eq!((c.queue_timeout, c.queue_max), (Duration::ZERO, 100));
    let with = |extra: (&'static str, &'static str)| {
        let mut pairs = base.to_vec();
        pairs.push(extra);
        cfg(&pairs)
    };
    assert!(!with(("QUOTA_AWARE", "false")).unwrap().quota.aware);
    assert!(with(("KEY_TIER", "FREE")).unwrap().quota.free);
    assert!(!with(("KEY_TIER", "paid")).unwrap().quota.free);
    assert_eq!(with(("KEY_TIER", "gold")).unwrap_err().var, "KEY_TIER");
    let limits = with(("MODEL_LIMITS", r#"{"gemini-*":{"rpm":5,"rpd":20}}"#)).unwrap();
    assert_eq!(
        limits.quota.configured.get("gemini-2.5-flash").unwrap().rpm,
        Some(5)
    );
    for bad in [
        "[1]",
        "{\"m\":{\"rpm\":-1}}",
        "{\"m\":{\"rps\":1}}",
        "not json",
    ] {
        let e = with(("MODEL_LIMITS", bad)).unwrap_err();
        assert_eq!(e.var, "MODEL_LIMITS", "{bad}");
    }
    assert_eq!(
        with(("QUEUE_TIMEOUT", "2.5")).unwrap().queue_timeout,
        Duration::from_millis(2500)
    );
    assert_eq!(with(("QUEUE_MAX", "-1")).unwrap_err().var, "QUEUE_MAX");
}

#[test]
fn proxies_are_checked_at_start_up_naming_the_entry_masked() {
    let c = with(&[(
        "PROXIES",
        r#"["http://bob:pw-0001@10.0.0.5:3128","socks5://10.0.0.6"]"#,
    )])
    .unwrap();
    assert_eq!(c.proxies.len(), 2);
    assert!(c.proxies_per_key);
    for (raw, why) in [
        (
            r#"["http://10.0.0.5:3128","ftp://bob:pw-0001@h:1"]"#,
            "entry 2",
        ),
        (r#"["https://bob:pw-0001@h:1/x"]"#, "no path"),
        (r#"["http://bob:pw-0001@h:70000"]"#, "1-65535"),
        (
            r#"["http://a:pw-0001@h:1","http://b:x@h:1"]"#,
            "listed twice",
        ),
    ] {
        let e = with(&[("PROXIES", raw)]).unwrap_err();
        assert_eq!(e.var, "PROXIES");
        assert!(e.problem.contains(why), "{raw}: {}", e.problem);
        assert!(!e.problem.contains("pw-0001"), "{raw}: {}", e.problem);
        assert!(e.problem.contains("****"), "{raw}: {}", e.problem);
    }
}

#[test]
fn https_proxies_are_accepted_and_proxy_ca_file_must_read() {
    let c = with(&[("PROXIES", r#"["https://bob:pw-0001@proxy.example"]"#)]).unwrap();
    assert_eq!(c.proxies[0].port, 443);
    assert_eq!(
        value(&c, "PROXIES").unwrap(),
        r#"["https://bob:****@proxy.example:443"]"#
    );
    // Read only when an https:// proxy is listed.
    let missing = "/nonexistent/proxy-ca.pem";
    assert!(with(&[("PROXY_CA_FILE", missing)]).is_ok());
    let e = with(&[
        ("PROXIES", r#"["https://bob:pw-0001@proxy.example"]"#),
        ("PROXY_CA_FILE", missing),
    ])
    .unwrap_err();
    assert_eq!(e.var, "PROXY_CA_FILE");
    assert!(e.problem.contains(missing), "{}", e.problem);
    assert!(!e.problem.contains("pw-0001"), "{}", e.problem);
}

#[test]
fn vertex_express_settings() {
    let c = with(&[]).unwrap();
    assert!(c.vertex_api_keys.is_empty());
    assert_eq!(
        c.vertex_base_url,
        "https://aiplatform.googleapis.com/v1beta1/publishers/google"
    );
    let c = with(&[
        ("VERTEX_API_KEYS", "vx-1,vx-2"),
        (
            "VERTEX_EXPRESS_BASE_URL",
            "http://127.0.0.1:9/v1/publishers/google/",
        ),
    ])
    .unwrap();
    assert_eq!(c.vertex_api_keys, ["vx-1", "vx-2"]);
    assert_eq!(c.vertex_base_url, "http://127.0.0.1:9/v1/publishers/google");
    for bad in ["ftp://x", "aiplatform.googleapis.com", "https://x/v1?key=k"] {
        let e = with(&[("VERTEX_EXPRESS_BASE_URL", bad)]).unwrap_err();
        assert_eq!(e.var, "VERTEX_EXPRESS_BASE_URL", "{bad}");
    }
}
