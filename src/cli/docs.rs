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
    clap_complete::generate(shell, &mut Cli::command(), "metasystem", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()
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
/// `metasystem-breakers-reset.1`), but with our date and manual.
fn man_pages(dir: &Path) -> std::io::Result<()> {
    fn each(cmd: &clap::Command, dir: &Path, written: &mut usize) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            each(sub, dir, written)?;
        }
        let page = man(cmd.clone());
        let path = dir.join(page.get_filename());
        let mut file = std::fs::File::create(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        page.render(&mut file)?;
        file.flush()?;
        *written += 1;
        Ok(())
    }
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("--dir {}: not a directory", dir.display()),
        ));
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = 0;
    each(&cmd, dir, &mut written)?;
    client::say(&format!("{written} pages written to {}", dir.display()));
    Ok(())
}
