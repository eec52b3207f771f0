//! Schemathesis against the admin API's own OpenAPI document, with every check it has: generated
//! requests (valid and not) for every documented operation, with an admin token, against a
//! throw-away copy of the `admin` fixture. Needs `schemathesis` (PyPI); `.ci/run` installs it.
//!
//! Checks are all on; `schemathesis.toml` (written beside the run, below) only narrows what
//! `positive_data_acceptance` calls a rejection where JSON Schema cannot say what is valid:
//! - the zone writes (`PUT`/`DELETE` under `/zones/`): whether a zone document or a name's
//!   entry is valid depends on the rest of the configuration (NS names, CNAME conflicts, the
//!   data centers a load-balanced name lists, ...), which the server checks whole and answers
//!   422 with every problem; and `If-Match` holds an ETag from an earlier GET, so a generated
//!   one is answered 412, a missing one on a whole-zone DELETE 428 (RFC 6585 §3, RFC 9110
//!   §13.1.1). All three are documented answers to well-formed requests.
//! - and, for `negative_data_rejection` on those routes, 412: a zone or owner name written
//!   with U-labels breaks the schema's (A-label) pattern yet is a name the server takes, and
//!   then refuses the request on its generated `If-Match`, which is a rejection too.

mod common;

use common::*;
use std::process::Command;

const CONFIG: &str = r#"
[[operations]]
include-path-regex = "^/api/v1/zones/"
include-method-regex = "^(PUT|DELETE)$"
checks.positive_data_acceptance.expected-statuses = ["2XX", "401", "403", "404", "409", "412", "422", "428"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "409", "412", "413", "415", "422", "428"]

[[operations]]
include-path = "/api/v1/events"
max-stream-events = 1
request-timeout = 3
"#;

#[test]
fn every_check_passes_on_generated_requests() {
    if !have_tool("schemathesis") {
        return;
    }
    let dir = fixture("admin");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    // Schemathesis reads its configuration from, and keeps its `.schemathesis/` cache in, the
    // directory it runs in: a temp dir, never the repository.
    let run = tempfile::tempdir().expect("tempdir");
    std::fs::write(run.path().join("schemathesis.toml"), CONFIG).expect("write config");
    let out = Command::new("schemathesis")
        .current_dir(run.path())
        .args(["run", &format!("http://{}/api/openapi.json", server.admin())])
        .args(["-H", "Authorization: Bearer admin-secret-0123456789"])
        .args(["--checks", "all", "--max-examples", "25", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing,stateful", "--seed", "9"])
        .args(["--request-timeout", "10"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
    // Valid override and weight bodies were generated and accepted: every accepted change is
    // logged as a transition (the API's event list keeps only the last few).
    let logs = server.logs();
    for subject in [
        "override datacenter eu",
        "weight datacenter eu",
        "override endpoint eu/198.51.100.10",
    ] {
        assert!(
            logs.lines()
                .any(|l| l.contains("transition") && l.contains(subject)),
            "no `{subject}` transition was logged:\n{logs}"
        );
    }
}
