//! Schemathesis against the admin API's own OpenAPI document: generated requests (valid and
//! not) for every documented operation, with an admin token, and not one answer may be a 5xx.
//! Needs `schemathesis` (PyPI); `.ci/run` installs it.

mod common;

use common::*;
use std::process::Command;

#[test]
fn no_generated_request_gets_a_server_error() {
    if !have_tool("schemathesis") {
        return;
    }
    let dir = fixture("admin");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let out = Command::new("schemathesis")
        .args(["run", &format!("http://{}/api/openapi.json", server.admin())])
        .args(["-H", "Authorization: Bearer admin-secret-0123456789"])
        .args(["--checks", "not_a_server_error", "--max-examples", "10"])
        .args(["--phases", "examples,coverage,fuzzing", "--seed", "9"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found server errors:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
}
