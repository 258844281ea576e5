#![no_main]
//! Fuzz target: configuration loading, TOML text plus environment overrides → `Config` or an
//! error, never a panic, and never a secret in what `Config` shows.
//!
//! Input layout: the TOML text, then optionally a NUL byte and `NAME=value` lines for the
//! environment. The word `XSECRETX` anywhere in the input stands for a long random secret the
//! fuzzer is not handed (libFuzzer may still learn it from the harness's comparisons; an input
//! that spells it out is not checked for it). When the placeholder appears exactly once and
//! ends up inside a token (the main one or a named one) or a database password, neither
//! `Debug`, `to_redacted_toml` nor an error message may contain the secret.

use std::collections::HashMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use whatsapp_mcp::config::Config;

const PLACEHOLDER: &str = "XSECRETX";
const SECRET: &str = "Qm7vT2xK9pLw4Rz8Nc3Hd6Fj1Bs5Gy0U";

/// The password of a `scheme://user:password@host/…` URL, as URL syntax defines it.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = authority.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1)
}

/// The `password=` query parameter libpq also accepts.
fn query_password(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.eq_ignore_ascii_case("password").then_some(value)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // libFuzzer learns the strings the harness compares, so the secret may also be spelled
    // out in the input; then it is no longer known to stand in one place only.
    let secret_once = text.matches(PLACEHOLDER).count() == 1 && !text.contains(SECRET);
    // The placeholder stands as the value of a `token` key in the TOML text.
    let toml_token_line = secret_once
        && text.split('\0').next().unwrap_or("").lines().any(|line| {
            line.trim_start()
                .strip_prefix("token")
                .is_some_and(|rest| rest.trim_start().starts_with('='))
                && line.contains(PLACEHOLDER)
        });
    let text = text.replace(PLACEHOLDER, SECRET);
    let (toml_text, env_text) = text.split_once('\0').unwrap_or((&text, ""));
    let env: HashMap<String, String> = env_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    // As the process environment does: variables set but empty count as unset.
    let lookup = |name: &str| env.get(name).filter(|v| !v.trim().is_empty()).cloned();
    let origin = Path::new("/nonexistent/whatsapp-mcp/config.toml");

    match Config::from_toml(toml_text, origin, &lookup) {
        Ok(config) => {
            let shown = format!("{config:?}\n{}", config.to_redacted_toml());
            let is_secret = |value: &str| secret_once && value.contains(SECRET);
            let token_secret = config.token.as_ref().is_some_and(|t| is_secret(t.expose()))
                || config.tokens.iter().any(|t| is_secret(t.secret.expose()));
            let password_secret = [&config.database_url, &config.session_database_url]
                .iter()
                .any(|url| {
                    let url = url.expose();
                    url_password(url).is_some_and(is_secret)
                        || query_password(url).is_some_and(is_secret)
                });
            if token_secret || password_secret {
                assert!(
                    !shown.contains(SECRET),
                    "a secret is shown (token: {token_secret}, password: {password_secret}):\n{shown}"
                );
            }
            // Whatever was accepted is shown the same way twice: redaction is deterministic.
            assert_eq!(config.to_redacted_toml(), config.to_redacted_toml());
        }
        Err(err) => {
            let message = err.to_string();
            assert!(!message.is_empty(), "an empty error");
            // Whatever is wrong with the file, the line holding the token is not quoted.
            if toml_token_line {
                assert!(
                    !message.contains(SECRET),
                    "the token line in an error: {message}"
                );
            }
            // The environment's token never comes back in an error, whatever else is wrong.
            if let Some(token) = lookup("WHATSAPP_MCP_TOKEN")
                && secret_once
                && token.contains(SECRET)
            {
                assert!(
                    !message.contains(SECRET),
                    "the token in an error: {message}"
                );
            }
        }
    }
});
