//! What an operator runs on: on a three-node cluster of real processes,
//! every role's `/metrics` agrees with docs/metrics.md; `/readyz` and the
//! gRPC health service tell who can work and who leads, also across a
//! leader kill; one add-leaf and one publication are each one trace across
//! processes, exported over OTLP to a collector in this test; JSON logs
//! carry shard, node, term and request id; and the shipped alert rules and
//! dashboard use only documented series and pass promtool.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_sigsum::SigningKey;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use support::cluster::LocalCluster;
use support::{Cairnd, free_port, scrape_metrics};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// One documented series: its type and the roles that export it.
#[derive(Debug)]
struct Documented {
    kind: String,
    roles: BTreeSet<String>,
}

/// The series table rows of docs/metrics.md, by series name.
fn documented() -> BTreeMap<String, Documented> {
    let text = std::fs::read_to_string(repo_file("docs/metrics.md")).expect("docs/metrics.md");
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("| `cairn_") else {
            continue;
        };
        let cells: Vec<&str> = rest.split('|').map(str::trim).collect();
        let name = format!("cairn_{}", cells[0].trim_end_matches('`'));
        let roles = cells[3]
            .split(',')
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect();
        let previous = rows.insert(
            name.clone(),
            Documented {
                kind: cells[1].to_owned(),
                roles,
            },
        );
        assert!(previous.is_none(), "{name} is documented twice");
    }
    assert!(rows.len() > 40, "the table was not parsed: {rows:?}");
    for name in ON_FIRST_EVENT {
        assert!(rows.contains_key(*name), "{name} is not documented");
    }
    rows
}

/// The families a `/metrics` text declares, by the name PromQL sees
/// (counters with `_total`), with their type. Fails on a family declared
/// twice, which Prometheus refuses.
fn families(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("TYPE line");
        let name = match kind {
            "counter" => format!("{name}_total"),
            _ => name.to_owned(),
        };
        assert!(
            out.insert(name.clone(), kind.to_owned()).is_none(),
            "{name} is declared twice:\n{text}"
        );
    }
    out
}

/// Labelled families that appear with their first series, i.e. after the
/// first event of their kind, which a healthy run need not have (an error,
/// a refusal, a follower to replicate to).
const ON_FIRST_EVENT: &[&str] = &[
    // A follower makes no object store calls.
    "cairn_object_store_operation_duration_seconds",
    "cairn_object_store_errors_total",
    "cairn_frontend_refusals_total",
    "cairn_http_connections_refused_total",
    "cairn_witness_http_connections_refused_total",
    "cairn_collector_witness_errors_total",
    "cairn_raft_replication_lag",
];

/// Checks that `role`'s live families and the documented ones agree
/// (families in [`ON_FIRST_EVENT`] may still be missing).
fn check_role(role: &str, text: &str, docs: &BTreeMap<String, Documented>) {
    let live = families(text);
    for (name, kind) in &live {
        let doc = docs
            .get(name)
            .unwrap_or_else(|| panic!("{role} exports {name}, which docs/metrics.md lacks"));
        assert_eq!(&doc.kind, kind, "{name}: documented type");
        assert!(
            doc.roles.contains(role),
            "{role} exports {name}, documented only for {:?}",
            doc.roles
        );
    }
    for (name, doc) in docs {
        if doc.roles.contains(role) && !ON_FIRST_EVENT.contains(&name.as_str()) {
            assert!(
                live.contains_key(name),
                "docs/metrics.md says {role} exports {name}; it does not:\n{text}"
            );
        }
    }
}

/// Spans an OTLP exporter sent, flattened.
#[derive(Clone, Debug)]
struct Span {
    service: String,
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for s in scope.spans {
                    spans.push(Span {
                        service: service.clone(),
                        name: s.name,
                        trace: s.trace_id,
                        id: s.span_id,
                        parent: s.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts an OTLP/gRPC trace collector on a free port.
async fn otlp_collector() -> (String, Collector) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let service = TraceServiceServer::new(collector.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), collector)
}

/// The span of `trace` named `name` from `service` whose parent is
/// `parent`, waiting for the exporters (they send in batches).
async fn child_of(
    collector: &Collector,
    trace: &[u8],
    parent: &Span,
    service: &str,
    name: &str,
) -> Span {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| {
                s.trace == trace && s.parent == parent.id && s.service == service && s.name == name
            })
            .cloned();
        if let Some(span) = found {
            return span;
        }
        if Instant::now() > deadline {
            let all: Vec<String> = collector
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace == trace)
                .map(|s| format!("{}:{} {:?}<-{:?}", s.service, s.name, s.id, s.parent))
                .collect();
            panic!(
                "no {service} span {name:?} under {}:{} in the trace; it has {all:#?}",
                parent.service, parent.name
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A span `service` sent named `name` that `pick` accepts (given every
/// span sent), waiting.
async fn find_span(
    collector: &Collector,
    service: &str,
    name: &str,
    pick: impl Fn(&Span, &[Span]) -> bool,
) -> Span {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = {
            let all = collector.spans.lock().unwrap();
            all.iter()
                .find(|s| s.service == service && s.name == name && pick(s, &all))
                .cloned()
        };
        if let Some(span) = found {
            return span;
        }
        assert!(
            Instant::now() < deadline,
            "no {service} span {name:?} was exported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn health(url: &str, service: &str) -> Result<ServingStatus, tonic::Code> {
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.get_ref().status())
        .map_err(|s| s.code())
}

async fn ready(base: &str) -> (u16, String) {
    let r = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Every JSON object line of a process's log.
fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("log");
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Whether one of `event`'s spans has `field` (with `value`, if given).
fn in_span_with(event: &serde_json::Value, field: &str, value: Option<&str>) -> bool {
    event["spans"].as_array().is_some_and(|spans| {
        spans.iter().any(|s| match (&s[field], value) {
            (serde_json::Value::Null, _) => false,
            (_, None) => true,
            (v, Some(want)) => {
                v.as_str() == Some(want) || v.as_u64().is_some_and(|n| n.to_string() == want)
            }
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_exports_documented_metrics_health_traces_and_json_logs() {
    let docs = documented();
    let tmp = tempfile::tempdir().unwrap();
    let (otlp, collector) = otlp_collector().await;
    let mut cluster = LocalCluster::configure(tmp.path(), free_port(), 3);
    cluster.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp);
    cluster.set_env("OTEL_BSP_SCHEDULE_DELAY", "100");
    // Logs quieter than traces: the trace export has its own filter, so
    // spans the log filter drops (cairn_proto's at warn here) still go out.
    cluster.set_env("RUST_LOG", "warn,cairn_sequencer=info,cairn_frontend=debug");
    cluster.global_arg("--log-format");
    cluster.global_arg("json");
    cluster.start_all().await;
    let layout: toml::Table = std::fs::read_to_string(tmp.path().join("cluster.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let collector_ops = format!("http://{}", layout["collector_ops"].as_str().unwrap());
    let witness = format!("http://{}", layout["witness"].as_str().unwrap());
    let frontend = format!("http://{}", cluster.frontend);

    // One submission, published (200).
    let key = SigningKey::from_seed(&[7; 32]);
    let message = cairn_sigsum::crypto::hash(b"observability test\n");
    let body = cairn_sigsum::api::AddLeafRequest::sign(&key, &message).to_ascii();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .post(format!("{}add-leaf", cluster.base_url()))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        if r.status() == reqwest::StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "add-leaf never got 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A request with an id of the client's, echoed and logged.
    let r = http
        .get(format!("{}no-such-endpoint", cluster.base_url()))
        .header("x-request-id", "test-request-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["x-request-id"], "test-request-42");
    let made_up = http.get(&frontend).send().await.unwrap();
    assert!(
        made_up.headers().contains_key("x-request-id"),
        "an id is made up when the client sends none"
    );

    // Metrics: every role agrees with the table, row by row.
    for node in &cluster.nodes {
        check_role("sequencer", &scrape_metrics(&node.ops).await, &docs);
    }
    let frontend_text = scrape_metrics(&frontend).await;
    check_role("frontend", &frontend_text, &docs);
    assert!(
        frontend_text.contains(
            "cairn_frontend_request_seconds_count{shard=\"dev\",endpoint=\"add-leaf\",status=\"200\"}"
        ),
        "{frontend_text}"
    );
    let collector_text = scrape_metrics(&collector_ops).await;
    check_role("collector", &collector_text, &docs);
    assert!(
        collector_text
            .contains("cairn_collector_witness_request_seconds_count{shard=\"dev\",witness="),
        "{collector_text}"
    );
    check_role("witness", &scrape_metrics(&witness).await, &docs);

    // Health: everyone ready, exactly one node serves as the leader.
    for base in [&frontend, &collector_ops, &witness] {
        assert_eq!(ready(base).await.0, 200, "{base}");
    }
    let leader = cluster.leader().await;
    for node in &cluster.nodes {
        let (status, body) = ready(&node.ops).await;
        assert_eq!(status, 200, "node {}: {body}", node.id);
        assert_eq!(health(&node.grpc, "").await, Ok(ServingStatus::Serving));
        assert_eq!(
            health(&node.grpc, "cairn.v1.Sequencer").await,
            Ok(ServingStatus::Serving)
        );
        let leads = health(&node.grpc, "cairn.v1.Sequencer/dev").await;
        let want = if node.id == leader {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        assert_eq!(leads, Ok(want), "node {}", node.id);
        assert_eq!(
            health(&node.grpc, "cairn.v1.Sequencer/nope").await,
            Err(tonic::Code::NotFound)
        );
    }

    // Traces. The add-leaf: HTTP request → batch → AddLeaves → sequence.
    let batch = find_span(&collector, "cairnd-frontend", "add_leaves_batch", |_, _| {
        true
    })
    .await;
    let parent = batch.parent.clone();
    let request = find_span(&collector, "cairnd-frontend", "request", |s, _| {
        s.id == parent
    })
    .await;
    assert_eq!(
        (request.service.as_str(), request.name.as_str()),
        ("cairnd-frontend", "request")
    );
    let add_leaves = child_of(
        &collector,
        &batch.trace,
        &batch,
        "cairnd-sequencer",
        "cairn.v1.Sequencer/AddLeaves",
    )
    .await;
    child_of(
        &collector,
        &batch.trace,
        &add_leaves,
        "cairnd-sequencer",
        "sequence",
    )
    .await;
    // The publication: round → sign, each witness, PublishCosigned →
    // publish → checkpoint write.
    let round = find_span(
        &collector,
        "cairnd-collector",
        "publication",
        |round, all| {
            all.iter()
                .any(|s| s.parent == round.id && s.name == "cairn.v1.Sequencer/PublishCosigned")
        },
    )
    .await;
    let heads = child_of(
        &collector,
        &round.trace,
        &round,
        "cairnd-sequencer",
        "cairn.v1.Sequencer/GetTreeHeads",
    )
    .await;
    child_of(&collector, &round.trace, &heads, "cairnd-sequencer", "sign").await;
    child_of(
        &collector,
        &round.trace,
        &round,
        "cairnd-collector",
        "witness",
    )
    .await;
    let publish_call = child_of(
        &collector,
        &round.trace,
        &round,
        "cairnd-sequencer",
        "cairn.v1.Sequencer/PublishCosigned",
    )
    .await;
    let publish = child_of(
        &collector,
        &round.trace,
        &publish_call,
        "cairnd-sequencer",
        "publish",
    )
    .await;
    child_of(
        &collector,
        &round.trace,
        &publish,
        "cairnd-sequencer",
        "write_checkpoint",
    )
    .await;

    // Failover: the leader is killed; the others see a new leader, say so
    // in their metrics, and the frontend is ready again.
    let before: BTreeMap<u64, String> = {
        let mut m = BTreeMap::new();
        for n in &cluster.nodes {
            m.insert(n.id, scrape_metrics(&n.ops).await);
        }
        m
    };
    cluster.kill(&format!("node{leader}"));
    let new_leader = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let l = cluster.leader().await;
            if l != leader {
                break l;
            }
            assert!(Instant::now() < deadline, "no new leader");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ready(&frontend).await;
        if status == 200 {
            break;
        }
        assert!(body.contains("shard dev"), "{body}");
        assert!(
            Instant::now() < deadline,
            "frontend not ready again: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    };
    for n in cluster.nodes.iter().filter(|n| n.id != leader) {
        let after = scrape_metrics(&n.ops).await;
        let changes = "cairn_raft_leader_changes_total{shard=\"dev\"}";
        let term = "cairn_raft_term{shard=\"dev\"}";
        assert!(
            value(&after, changes) > value(&before[&n.id], changes),
            "node {}: {after}",
            n.id
        );
        assert!(value(&after, term) > value(&before[&n.id], term));
        let leads = health(&n.grpc, "cairn.v1.Sequencer/dev").await;
        assert_eq!(
            leads == Ok(ServingStatus::Serving),
            n.id == new_leader,
            "node {}",
            n.id
        );
        if n.id == new_leader {
            assert!(after.contains("cairn_raft_replication_lag{shard=\"dev\",follower="));
        }
    }

    // JSON logs: every line an object; context fields present.
    let logs = tmp.path().join("logs");
    let frontend_log = json_lines(&logs.join("frontend.log"));
    assert!(
        frontend_log
            .iter()
            .any(|e| in_span_with(e, "request_id", Some("test-request-42"))),
        "no frontend event carries the request id"
    );
    let node_log = json_lines(&logs.join(format!("node{new_leader}.log")));
    assert!(
        node_log.iter().any(|e| e["term"].is_u64()
            && in_span_with(e, "shard", Some("dev"))
            && in_span_with(e, "node", Some(&new_leader.to_string()))),
        "no leadership event with term, shard and node"
    );
    for e in node_log.iter().chain(&frontend_log) {
        assert!(e["timestamp"].is_string() && e["level"].is_string(), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairnd_dev_exports_the_documented_sequencer_frontend_and_collector_series() {
    let docs = documented();
    let tmp = tempfile::tempdir().unwrap();
    let listen = free_port();
    let mut dev = Cairnd::start(tmp.path(), listen);
    dev.wait_ready().await;
    let base = format!("http://{listen}");
    reqwest::get(format!("{base}/dev/get-tree-head"))
        .await
        .unwrap();
    check_role("dev", &scrape_metrics(&base).await, &docs);
    assert_eq!(ready(&base).await.0, 200);
    dev.stop();
}

/// The series names an alert rule, a promtool test or a dashboard query
/// uses (histogram series by their family).
fn series_used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("cairn_") {
        let start = i + at;
        let preceded = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
        if !preceded {
            out.insert(text[start..end].to_owned());
        }
        i = end;
    }
    out
}

fn documented_or_histogram_series(name: &str, docs: &BTreeMap<String, Documented>) -> bool {
    docs.contains_key(name)
        || ["_bucket", "_count", "_sum"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .and_then(|family| docs.get(family))
                .is_some_and(|d| d.kind == "histogram")
        })
}

#[test]
fn alert_rules_and_the_dashboard_use_only_documented_series_and_pass_promtool() {
    let docs = documented();
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/prometheus/alerts_test.yml",
        "deploy/grafana/cairn.json",
    ] {
        let text = std::fs::read_to_string(repo_file(file)).expect(file);
        let used = series_used(&text);
        assert!(used.len() > 5, "{file}: {used:?}");
        for name in used {
            assert!(
                documented_or_histogram_series(&name, &docs),
                "{file} uses {name}, which docs/metrics.md does not list"
            );
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("deploy/grafana/cairn.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() > 10));

    // Every alert has its runbook section.
    let rules = std::fs::read_to_string(repo_file("deploy/prometheus/alerts.yml")).unwrap();
    let runbook = std::fs::read_to_string(repo_file("docs/runbook.md")).unwrap();
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                runbook.contains(&format!("## {name}\n")),
                "docs/runbook.md has no section for {name}"
            );
        }
    }

    // promtool (Debian's `prometheus` package; scripts/bootstrap.sh
    // installs it): the rules load, and each alert fires on trouble and
    // stays quiet on health.
    let dir = repo_file("deploy/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool (apt-get install prometheus) must be installed");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
