//! Headless Chromium for the status page tests: the DOM once the page's scripts ran, and
//! screenshots kept under the target directory for people.
//! Needs `chromium` (or `chromium-browser`): [`Chromium::find`] says loudly when it is missing.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser and the window it renders pages in.
pub struct Chromium {
    program: &'static str,
    /// `--window-size`: `width,height`.
    window: String,
    /// `--virtual-time-budget`, in milliseconds: how long the page's scripts may run (timers
    /// fire in virtual time, so a page that waits for them takes no longer).
    budget_ms: u32,
}

impl Chromium {
    /// The browser installed, rendering in a `width` x `height` window with `budget_ms` of
    /// virtual time. When none is installed, says so loudly and the test is skipped, unless
    /// MERIDIAN_REQUIRE_TOOLS is set, where it fails (see [`super::have_tool`]).
    pub fn find(width: u32, height: u32, budget_ms: u32) -> Option<Chromium> {
        let program = ["chromium", "chromium-browser"]
            .into_iter()
            .find(|b| super::on_path(b));
        if program.is_none() {
            super::skip(&super::missing("chromium"));
        }
        Some(Chromium {
            program: program?,
            window: format!("{width},{height}"),
            budget_ms,
        })
    }

    /// The DOM of `url` once its scripts ran, without the scripts themselves (their source holds
    /// every phrase the page can show, which would satisfy any search of the DOM).
    pub fn dom(&self, url: &str) -> String {
        let out = self.run(url, "--dump-dom".to_string());
        let dom = String::from_utf8_lossy(&out);
        dom.split("<script>").next().unwrap_or_default().to_string()
    }

    /// A screenshot of `url`, written as `name` under the target directory, where CI keeps test
    /// output; its path. Fails unless a PNG was written.
    pub fn screenshot(&self, url: &str, name: &str) -> PathBuf {
        let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        self.run(url, format!("--screenshot={}", png.display()));
        let bytes = std::fs::read(&png).expect("the screenshot");
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG: {}", png.display());
        png
    }

    /// Runs the browser on `url` with `what` (`--dump-dom` or `--screenshot=…`), in a profile of
    /// its own; what it printed.
    fn run(&self, url: &str, what: String) -> Vec<u8> {
        let profile = tempfile::tempdir().unwrap();
        let out = Command::new(self.program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
            ])
            .arg(format!("--window-size={}", self.window))
            .arg(format!("--virtual-time-budget={}", self.budget_ms))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(what)
            .arg(url)
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}
