//! The ECS task definitions in deploy/ecs/ register with ECS (moto's, through boto3, the AWS
//! SDK an operator's tooling uses) and agree with the engine: every environment name is a
//! setting of `beast config docs`, every value is one `beast` accepts, the ports mapped are
//! the ports configured, the health check is the image's, and the stop timeout leaves the
//! drain its grace.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use beast_tests::services::Moto;
use serde_json::Value;

/// Registers every task definition with ECS at `endpoint` and prints what ECS describes back.
const REGISTER: &str = r#"
import json, sys, boto3
ecs = boto3.client("ecs", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
described = []
for path in sys.argv[2:]:
    definition = json.load(open(path))
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    described.append(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"])
print(json.dumps(described, default=str))
"#;

fn definitions() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/ecs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The environment names of the configuration table.
fn settings() -> BTreeSet<String> {
    let docs = beast_tests::run(
        std::process::Command::new(beast_tests::beast_bin()).args(["config", "docs"]),
    );
    assert_eq!(docs.code, Some(0), "{}", docs.stderr);
    docs.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

fn env_of(container: &Value) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = container["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    // Secrets arrive as environment variables too; stand-ins of the right shape.
    for secret in container["secrets"].as_array().unwrap() {
        let name = secret["name"].as_str().unwrap().to_string();
        let value = match name.as_str() {
            "DATABASE_URL" => "postgres://beast:secret@db.internal:5432/beast",
            _ => "an-admin-key-of-32-characters-xx",
        };
        env.push((name, value.into()));
    }
    env
}

#[test]
fn the_task_definitions_register_and_match_the_configuration() {
    let moto = Moto::start();
    let files = definitions();
    assert_eq!(files.len(), 4, "{files:?}");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(REGISTER)
        .arg(moto.endpoint())
        .args(&files)
        .output()
        .expect("python3 with boto3 (scripts/test.sh installs moto[server])");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let described: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let settings = settings();

    let mut roles = Vec::new();
    for (task, file) in described.iter().zip(&files) {
        let family = task["family"].as_str().unwrap();
        assert_eq!(task["requiresCompatibilities"][0], "FARGATE", "{family}");
        assert_eq!(task["networkMode"], "awsvpc", "{family}");
        let container = &task["containerDefinitions"][0];
        let env = env_of(container);
        let value = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        for (name, _) in &env {
            assert!(settings.contains(name), "{family}: {name} is not a setting");
        }
        assert_eq!(
            value("BEAST_IO"),
            Some("epoll"),
            "{family}: Fargate blocks io_uring"
        );
        let role = value("SERVER_TYPE").unwrap().to_string();

        // Every value is one beast accepts: the effective configuration under this
        // environment resolves (exit 0), and its ports are the ones mapped.
        let mut show = std::process::Command::new(beast_tests::beast_bin());
        show.args(["config", "show", "--format", "json"])
            .env_clear();
        for (name, v) in &env {
            show.env(name, v);
        }
        let shown = beast_tests::run(&mut show);
        assert_eq!(shown.code, Some(0), "{family}: {}", shown.stderr);
        let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
        let setting = |name: &str| -> String {
            shown["settings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["setting"] == name)
                .map(|s| {
                    s["value"]
                        .as_str()
                        .map_or_else(|| s["value"].to_string(), str::to_string)
                })
                .unwrap_or_else(|| panic!("{name} in config show"))
        };
        let ports: &[(&str, &str)] = if role == "WEBHOOK_SERVER" {
            &[("HEALTH_PORT_WEBHOOK", "tcp")]
        } else {
            &[
                ("TCP_PORT_LPO", "tcp"),
                ("TCP_PORT_LRS", "tcp"),
                ("HEALTH_PORT_LPO", "tcp"),
                ("HEALTH_PORT_LRS", "tcp"),
                ("UDP_PORT_LPO", "udp"),
                ("UDP_PORT_LRS", "udp"),
            ]
        };
        let mut mapped: Vec<(String, String)> = container["portMappings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["containerPort"].to_string(),
                    p["protocol"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut wanted: Vec<(String, String)> = ports
            .iter()
            .map(|(name, proto)| (setting(name), (*proto).to_string()))
            .collect();
        mapped.sort();
        wanted.sort();
        assert_eq!(mapped, wanted, "{family}: ports");

        assert_eq!(
            container["healthCheck"]["command"],
            serde_json::json!(["CMD", "/usr/local/bin/beast", "health"]),
            "{family}"
        );
        let grace_s = setting("BEAST_SHUTDOWN_GRACE_MS").parse::<u64>().unwrap() / 1000;
        assert!(
            container["stopTimeout"].as_u64().unwrap() >= grace_s + 5,
            "{family}: stopTimeout against a {grace_s} s grace"
        );
        let nofile = container["ulimits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "nofile");
        assert!(
            nofile.is_some_and(|u| u["softLimit"].as_u64() >= Some(65_536)),
            "{family}"
        );
        assert_eq!(
            container["logConfiguration"]["logDriver"], "awslogs",
            "{family}"
        );
        let secrets: Vec<&str> = container["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(secrets, ["DATABASE_URL", "ADMIN_KEY"], "{family}");
        assert!(
            container["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["valueFrom"]
                    .as_str()
                    .unwrap()
                    .starts_with("arn:aws:secretsmanager:")),
            "{family}"
        );
        // The data directory on the task's storage, the root filesystem read-only.
        assert_eq!(value("BEAST_DATA_DIR"), Some("/data"), "{family}");
        assert_eq!(
            container["mountPoints"][0]["containerPath"], "/data",
            "{family}"
        );
        assert_eq!(container["readonlyRootFilesystem"], true, "{family}");
        assert!(
            task["ephemeralStorage"]["sizeInGiB"].as_u64() >= Some(21),
            "{family}"
        );
        roles.push((
            file.file_name().unwrap().to_string_lossy().into_owned(),
            role,
            task["cpu"].as_str().unwrap().to_string(),
        ));
    }
    roles.sort();
    let expected = [
        ("beast-lrs.json", "APP_REPORT_SERVER", "2048"),
        ("beast-main.json", "APP_REPORT_SERVER", "2048"),
        ("beast-mirror.json", "APP_REPORT_SERVER", "2048"),
        ("beast-webhook.json", "WEBHOOK_SERVER", "1024"),
    ]
    .map(|(f, r, c)| (f.to_string(), r.to_string(), c.to_string()));
    assert_eq!(roles, expected);
}
