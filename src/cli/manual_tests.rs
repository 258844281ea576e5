//! The manual pages checked against the command line they document: every subcommand and
//! option, every setting and every variable the sources read. Here under `cli` because the
//! pages are rendered from its clap definition.

use clap::CommandFactory as _;

use super::Cli;
use crate::config::SETTINGS;
use crate::exit::EXIT_CODES;
use crate::manual::{commands_page, config_page, escape};

fn page1() -> String {
    commands_page(Cli::command()).unwrap()
}

/// Variable names read in src/ with a literal: `var("X")`, `var_os("X")`, `env("X")`
/// (the config loader's lookup), `process_env("X")`, clap's `env = "X"`, and
/// `var(NAME)` where the same file has `const NAME: &str = "X"`.
fn variables_read_in_sources() -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                scan(&std::fs::read_to_string(&path).unwrap(), &mut found);
            }
        }
    }
    found
}

fn scan(source: &str, found: &mut std::collections::BTreeSet<String>) {
    let is_name = |s: &str| {
        s.len() > 2
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    for opener in ["var(", "var_os(", "env(", "env = "] {
        for (at, _) in source.match_indices(opener) {
            let rest = &source[at + opener.len()..];
            if let Some(literal) = rest.strip_prefix('"') {
                let name = literal.split('"').next().unwrap_or("");
                if is_name(name) {
                    found.insert(name.to_owned());
                }
            } else {
                let ident: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let constant = format!("const {ident}: &str = \"");
                if is_name(&ident)
                    && let Some(at) = source.find(&constant)
                {
                    let name = source[at + constant.len()..].split('"').next();
                    found.extend(name.filter(|n| is_name(n)).map(str::to_owned));
                }
            }
        }
    }
}

#[test]
fn every_variable_read_in_the_sources_is_in_the_manual() {
    let page = page1();
    let found = variables_read_in_sources();
    for var in [
        "WHATSAPP_MCP_CONFIG",
        "DATABASE_URL",
        "WHATSAPP_MCP_FAKE_WA_SERVER",
    ] {
        assert!(found.contains(var), "the scan missed {var}: {found:?}");
    }
    // Release builds leave the test seams' variables out of the manual (and the binary).
    let seams_documented = cfg!(feature = "fake-engine");
    for var in &found {
        if var.starts_with("WHATSAPP_MCP_FAKE_") && !seams_documented {
            continue;
        }
        let entry = format!(".TP\n\\fB{}\\fR\n", escape(var));
        assert!(page.contains(&entry), "{var} is not in whatsapp-mcp(1)");
    }
}

#[test]
fn every_setting_and_its_variables_are_in_the_config_page() {
    let page = config_page();
    let page1 = page1();
    for setting in SETTINGS {
        let (table, key) = setting.key.split_once('.').unwrap();
        assert!(page.contains(&format!(".SH \"[{table}]\"")), "{table}");
        assert!(
            page.contains(&format!(".TP\n\\fB{}\\fR = ", escape(key))),
            "{key}"
        );
        for var in setting.env {
            assert!(page.contains(&escape(var)), "{var} in page 5");
            assert!(page1.contains(&format!("\\fB{}\\fR", escape(var))), "{var}");
        }
    }
}

#[test]
fn every_subcommand_and_option_is_in_the_commands_page() {
    let page = page1();
    let mut cmd = Cli::command();
    cmd.build();
    let mut count = 0;
    for sub in cmd.get_subcommands().filter(|sub| sub.get_name() != "help") {
        assert!(
            page.contains(&format!(".SS {}\n", sub.get_name())),
            "{sub:?}"
        );
        for arg in sub.get_arguments().filter_map(clap::Arg::get_long) {
            if arg != "help" {
                assert!(page.contains(&escape(&format!("--{arg}"))), "--{arg}");
            }
        }
        count += 1;
    }
    assert!(count >= 9, "{count} subcommands");
    for (code, _) in EXIT_CODES {
        assert!(
            page.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "exit {code}"
        );
    }
    assert!(page.contains(".SH FILES") && page.contains(".SH EXAMPLES"));
}
