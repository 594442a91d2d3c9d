//! `metasystem completions SHELL` and `metasystem man`: the shell completion scripts
//! (clap_complete) and the manual pages (clap_mangen), generated from the same clap definitions
//! as the parser, so they never disagree with it. Neither needs the daemon or a config.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Subcommand};

use super::{client, exit, Cli};

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// Print the shell completion script for SHELL.
    ///
    /// `metasystem completions bash > /usr/share/bash-completion/completions/metasystem`;
    /// zsh: a `_metasystem` file in a directory of $fpath; fish:
    /// ~/.config/fish/completions/metasystem.fish.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff); --dir writes one page per command.
    ///
    /// `metasystem man > /usr/local/share/man/man1/metasystem.1`; with --dir, one page per
    /// command there instead (metasystem.1, metasystem-sync.1, ...).
    Man {
        /// Write every page into this directory (it must exist).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Runs it; the exit code.
pub fn run(command: &DocsCommand) -> u8 {
    let written = match command {
        DocsCommand::Completions { shell } => completions(*shell),
        DocsCommand::Man { dir: None } => man_page(),
        DocsCommand::Man { dir: Some(dir) } => man_pages(dir),
    };
    match written {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            client::say(&format!("metasystem: {e}"));
            exit::USAGE
        }
    }
}

fn completions(shell: clap_complete::Shell) -> std::io::Result<()> {
    let mut script = Vec::new();
    let mut cli = Cli::command();
    clap_complete::generate(shell, &mut cli, "metasystem", &mut script);
    if shell == clap_complete::Shell::Fish {
        let mut more = String::new();
        fish_positional_choices(&cli, &[], &mut more);
        script.extend_from_slice(more.as_bytes());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()
}

/// clap_complete's fish script completes the choices of options but not of positional
/// arguments (`metasystem completions <TAB>` offered files): a `complete` line for each
/// positional with fixed choices, under its subcommand, in the generated script's terms.
fn fish_positional_choices(cmd: &clap::Command, path: &[&str], out: &mut String) {
    for sub in cmd.get_subcommands() {
        let mut at = path.to_vec();
        at.push(sub.get_name());
        let choices: Vec<String> = sub
            .get_positionals()
            .flat_map(|a| a.get_possible_values())
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !choices.is_empty() {
            let condition = match at.as_slice() {
                [top] => format!("__fish_metasystem_using_subcommand {top}"),
                [top, rest @ ..] => format!(
                    "__fish_metasystem_using_subcommand {top}; and __fish_seen_subcommand_from {}",
                    rest.join(" ")
                ),
                [] => continue,
            };
            out.push_str(&format!(
                "complete -c metasystem -n \"{condition}\" -f -a \"{}\"\n",
                choices.join(" ")
            ));
        }
        fish_positional_choices(sub, &at, out);
    }
}

/// The command as the pages show it: dated with the commit's date (not the build's, so the
/// same commit gives the same pages).
fn man(cmd: clap::Command) -> clap_mangen::Man {
    let page = clap_mangen::Man::new(cmd).manual("metasystem manual");
    match crate::BUILD.split_whitespace().nth(1) {
        Some(date) => page.date(date),
        None => page,
    }
}

fn man_page() -> std::io::Result<()> {
    let mut roff = Vec::new();
    man(Cli::command()).render(&mut roff)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&roff)?;
    out.flush()
}

/// One page per command, the way `clap_mangen::generate_to` names them (`metasystem-sync.1`,
/// `metasystem-breakers-reset.1`), but with our date and manual. Each page is written to a new
/// temp file beside it and renamed over its name: a link there is replaced, never followed
/// (nothing outside DIR is written), and a page is whole or not there.
fn man_pages(dir: &Path) -> std::io::Result<()> {
    fn each(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            each(sub, pages)?;
        }
        let page = man(cmd.clone());
        let mut roff = Vec::new();
        page.render(&mut roff)?;
        pages.push((page.get_filename(), roff));
        Ok(())
    }
    fn write(dir: &Path, name: &str, roff: &[u8]) -> std::io::Result<()> {
        let path = dir.join(name);
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let said = |e: std::io::Error, what: &Path| {
            std::io::Error::new(e.kind(), format!("{}: {e}", what.display()))
        };
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|mut f| f.write_all(roff));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(said(e, &temp));
        }
        std::fs::rename(&temp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            said(e, &path)
        })
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("--dir {}: not a directory", dir.display()),
            ))
        }
        Err(e) => {
            return Err(std::io::Error::new(
                e.kind(),
                format!("--dir {}: {e}", dir.display()),
            ))
        }
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    each(&cmd, &mut pages)?;
    for (i, (name, roff)) in pages.iter().enumerate() {
        if let Err(e) = write(dir, name, roff) {
            return Err(std::io::Error::new(
                e.kind(),
                format!("{e} ({i} of {} pages written)", pages.len()),
            ));
        }
    }
    client::say(&format!(
        "{} pages written to {}",
        pages.len(),
        dir.display()
    ));
    Ok(())
}
