//! Configuration layering: defaults → environment file → seed names → `ATOMICSEATS__*`.

use std::collections::HashMap;

use atomicseats::config::{ConfigError, Environment, QueueKind, Settings};
use secrecy::ExposeSecret;

use crate::helpers::{config_dir, test_env};

fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::load(&config_dir(), &env)
}

fn invalid_key(err: ConfigError) -> String {
    match err {
        ConfigError::Invalid { key, .. } => key,
        other => panic!("expected an invalid-key error, got {other}"),
    }
}

#[test]
fn defaults_load_as_local() {
    let s = load(&[]).unwrap();
    assert_eq!(s.environment, Environment::Local);
    assert_eq!(s.http.port, 3000);
    assert_eq!(s.queue.kind, QueueKind::Memory);
    assert_eq!(s.auth.access_token_ttl, "15m");
    assert!(s.redis.url.is_empty());
}

#[test]
fn the_environment_file_overrides_defaults() {
    let s = Settings::load(&config_dir(), &test_env(&[])).unwrap();
    assert_eq!(s.environment, Environment::Test);
    assert_eq!(s.http.port, 0, "test.toml sets port 0");
    assert_eq!(s.auth.bcrypt_cost, 4);
    assert_eq!(s.reconcile.schedule, "");
}

#[test]
fn structured_environment_variables_override_files() {
    let s = load(&[
        ("ATOMICSEATS__HTTP__PORT", "8088"),
        ("ATOMICSEATS__DATABASE__POOL_SIZE", "3"),
        ("ATOMICSEATS__QUEUE__KIND", "kafka"),
        ("ATOMICSEATS__DATABASE__MIGRATE_ON_START", "false"),
    ])
    .unwrap();
    assert_eq!(s.http.port, 8088);
    assert_eq!(s.database.pool_size, 3);
    assert_eq!(s.queue.kind, QueueKind::Kafka);
    assert!(!s.database.migrate_on_start);
}

#[test]
fn the_seed_variable_names_still_work() {
    let s = load(&[
        ("DATABASE_URL", "postgres://app:pw@db.internal:5433/tickets"),
        ("PORT", "4000"),
        ("REDIS_HOST", "cache.internal"),
        ("REDIS_PORT", "6380"),
        ("REDIS_PASSWORD", "redispw"),
        ("KAFKA_BROKER", "kafka:9092"),
        ("ACCESS_TOKEN_SECRET", "a-secret"),
        ("REFRESH_TOKEN_SECRET", "r-secret"),
        ("ACCESS_TOKEN_EXPIRY", "10m"),
        ("REFRESH_TOKEN_EXPIRY", "30d"),
        ("MAIL_USER", "sender@example.com"),
        ("MAIL_PASS", "app-password"),
    ])
    .unwrap();
    assert_eq!(s.database.url, "postgres://app:pw@db.internal:5433/tickets");
    assert_eq!(s.http.port, 4000);
    assert_eq!(s.redis.url, "redis://cache.internal:6380");
    assert_eq!(
        s.redis.password.as_ref().unwrap().expose_secret(),
        "redispw"
    );
    assert_eq!(s.kafka.brokers, "kafka:9092");
    assert_eq!(
        s.auth.access_token_secret.as_ref().unwrap().expose_secret(),
        "a-secret"
    );
    assert_eq!(
        s.auth
            .refresh_token_secret
            .as_ref()
            .unwrap()
            .expose_secret(),
        "r-secret"
    );
    assert_eq!(s.auth.access_token_ttl, "10m");
    assert_eq!(s.auth.refresh_token_ttl, "30d");
    assert_eq!(s.mail.username, "sender@example.com");
    assert_eq!(
        s.mail.password.as_ref().unwrap().expose_secret(),
        "app-password"
    );
}

#[test]
fn structured_names_win_over_seed_names() {
    let s = load(&[("PORT", "4000"), ("ATOMICSEATS__HTTP__PORT", "5000")]).unwrap();
    assert_eq!(s.http.port, 5000);
}

#[test]
fn an_unparseable_cron_schedule_names_the_key() {
    let err = load(&[("ATOMICSEATS__RECONCILE__SCHEDULE", "every hour")]).unwrap_err();
    assert!(err.to_string().contains("reconcile.schedule"), "{err}");
    assert_eq!(invalid_key(err), "reconcile.schedule");
}

#[test]
fn a_bad_url_names_the_key() {
    let err = load(&[("DATABASE_URL", "not a url")]).unwrap_err();
    assert_eq!(invalid_key(err), "database.url");
    let err = load(&[("ATOMICSEATS__REDIS__URL", "http://cache")]).unwrap_err();
    assert_eq!(invalid_key(err), "redis.url");
}

#[test]
fn cors_origins_and_request_limits_are_checked() {
    let s = load(&[(
        "ATOMICSEATS__HTTP__CORS_ALLOWED_ORIGINS",
        "https://shop.example.com,http://localhost:5173",
    )])
    .unwrap();
    assert_eq!(
        s.http.cors_allowed_origins,
        ["https://shop.example.com", "http://localhost:5173"]
    );
    for bad in [
        "shop.example.com",
        "https://shop.example.com/",
        "ftp://x.example",
        "*",
    ] {
        let err = load(&[("ATOMICSEATS__HTTP__CORS_ALLOWED_ORIGINS", bad)]).unwrap_err();
        assert_eq!(invalid_key(err), "http.cors_allowed_origins", "{bad}");
    }
    let err = load(&[("ATOMICSEATS__HTTP__BOOKING_TIMEOUT_MS", "5000")]).unwrap_err();
    assert_eq!(invalid_key(err), "http.booking_timeout_ms");
    let err = load(&[("ATOMICSEATS__HTTP__MAX_HEADER_BYTES", "0")]).unwrap_err();
    assert_eq!(invalid_key(err), "http.max_header_bytes");
}

#[test]
fn production_requires_secrets() {
    let err = load(&[("ATOMICSEATS_ENV", "production")]).unwrap_err();
    assert_eq!(invalid_key(err), "auth.access_token_secret");

    let access = "q3T9vLx2Rk8ZpN4wHc7YbJ1mFs6GdE0a";
    let refresh = "Wm5Kx8Pq2Zr7Nt4Lv9Bc1Hj6Fd3Gs0Ye";
    let err = load(&[
        ("ATOMICSEATS_ENV", "production"),
        ("ACCESS_TOKEN_SECRET", access),
    ])
    .unwrap_err();
    assert_eq!(invalid_key(err), "auth.refresh_token_secret");

    let s = load(&[
        ("ATOMICSEATS_ENV", "production"),
        ("ACCESS_TOKEN_SECRET", access),
        ("REFRESH_TOKEN_SECRET", refresh),
    ])
    .unwrap();
    assert_eq!(s.environment, Environment::Production);
    assert_eq!(s.log.format, atomicseats::config::LogFormat::Json);
}

/// Security #2: the placeholders in `.env.example`, regular strings and one key for both
/// token kinds are refused at start-up in production, naming the key.
#[test]
fn production_refuses_placeholder_weak_and_shared_secrets() {
    let example = std::fs::read_to_string(config_dir().join("../.env.example")).unwrap();
    let value = |name: &str| {
        example
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let good = "Wm5Kx8Pq2Zr7Nt4Lv9Bc1Hj6Fd3Gs0Ye";
    for (access, key) in [
        (value("ACCESS_TOKEN_SECRET"), "auth.access_token_secret"),
        ("x".repeat(40), "auth.access_token_secret"),
        (
            "abababababababababababababababab".to_owned(),
            "auth.access_token_secret",
        ),
        (
            "my-super-secret-secret-secret-key".to_owned(),
            "auth.access_token_secret",
        ),
        (good.to_owned(), "auth.refresh_token_secret"),
    ] {
        let err = load(&[
            ("ATOMICSEATS_ENV", "production"),
            ("ACCESS_TOKEN_SECRET", &access),
            ("REFRESH_TOKEN_SECRET", good),
        ])
        .unwrap_err();
        assert_eq!(invalid_key(err), key, "{access}");
    }
    let err = load(&[
        ("ATOMICSEATS_ENV", "production"),
        ("ACCESS_TOKEN_SECRET", "q3T9vLx2Rk8ZpN4wHc7YbJ1mFs6GdE0a"),
        ("REFRESH_TOKEN_SECRET", &value("REFRESH_TOKEN_SECRET")),
    ])
    .unwrap_err();
    assert_eq!(invalid_key(err), "auth.refresh_token_secret");
}

#[test]
fn bad_durations_and_unknown_environments_are_rejected() {
    let err = load(&[("ACCESS_TOKEN_EXPIRY", "soon")]).unwrap_err();
    assert_eq!(invalid_key(err), "auth.access_token_ttl");
    let err = load(&[("ATOMICSEATS_ENV", "staging")]).unwrap_err();
    assert_eq!(invalid_key(err), "ATOMICSEATS_ENV");
}

#[test]
fn unknown_keys_are_rejected() {
    let err = load(&[("ATOMICSEATS__HTTP__PROT", "1")]).unwrap_err();
    assert!(err.to_string().contains("prot"), "{err}");
}

#[test]
fn secrets_in_files_are_rejected() {
    let dir = std::env::temp_dir().join(format!("atomicseats-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(config_dir().join("default.toml"), dir.join("default.toml")).unwrap();
    std::fs::write(
        dir.join("local.toml"),
        "[auth]\naccess_token_secret = \"in-a-file\"\n",
    )
    .unwrap();

    let err = Settings::load(&dir, &HashMap::new()).unwrap_err();

    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(invalid_key(err), "auth.access_token_secret");
}

#[test]
fn the_compiled_in_defaults_apply_without_a_config_directory() {
    let s = Settings::load(std::path::Path::new("/nonexistent"), &HashMap::new()).unwrap();
    assert_eq!(s.http.port, 3000);
}

#[test]
fn printing_the_configuration_redacts_secrets() {
    let s = load(&[
        ("DATABASE_URL", "postgres://app:db-password@db/x"),
        ("ACCESS_TOKEN_SECRET", "top-secret-value"),
        ("MAIL_PASS", "mail-password"),
    ])
    .unwrap();
    let printed = s.to_redacted_toml();
    for secret in ["db-password", "top-secret-value", "mail-password"] {
        assert!(!printed.contains(secret), "{secret} leaked:\n{printed}");
    }
    assert!(printed.contains("[redacted]"));
    assert!(printed.contains("[http]"));
}

/// Every configuration key (`section.key`, as `config/default.toml` and the settings know it)
/// is documented in docs/configuration.md.
#[test]
fn every_key_is_in_the_configuration_reference() {
    let reference = include_str!("../../docs/configuration.md");
    let settings = load(&[]).unwrap();
    let tree = serde_json::to_value(&settings).unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (section, keys) in tree.as_object().unwrap() {
        let Some(keys) = keys.as_object() else {
            continue;
        };
        for key in keys.keys() {
            let name = format!("`{section}.{key}`");
            checked += 1;
            if !reference.contains(&name) {
                missing.push(name);
            }
        }
    }
    assert!(checked > 50, "only {checked} keys read from the settings");
    assert!(
        missing.is_empty(),
        "not documented in docs/configuration.md: {missing:?}"
    );
}
