//! The Kubernetes inventory (namespaces, workloads, services, pods) and the host inventory.

use crate::model::{Bank, Kind, SEGMENTS, compliance};
use crate::time::rfc3339;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::Path;

/// Writes `inventory/*` and `hosts.csv` / `hosts.yaml` under `dir`.
pub fn write(bank: &Bank, dir: &Path) -> io::Result<()> {
    let inv = dir.join("inventory");
    std::fs::create_dir_all(&inv)?;
    let mut ns = String::new();
    for s in SEGMENTS {
        let _ = write!(
            ns,
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {s}\n  labels:\n    segment: {s}\n    compliance: {}\n",
            compliance(s)
        );
    }
    std::fs::write(inv.join("namespaces.yaml"), ns)?;

    let mut wl = String::new();
    let mut svc = String::new();
    for w in bank.workloads.iter().filter(|w| !w.kind.is_vm()) {
        let kind = if w.kind == Kind::StatefulSet {
            "StatefulSet"
        } else {
            "Deployment"
        };
        let labels: String = w
            .labels()
            .iter()
            .map(|(k, v)| format!("        {k}: {v}\n"))
            .collect();
        let ports: String = w
            .ports
            .iter()
            .map(|(n, p, proto)| {
                format!(
                    "            - name: {n}\n              containerPort: {p}\n              protocol: {proto}\n"
                )
            })
            .collect();
        let _ = write!(
            wl,
            "---\napiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {n}\n  namespace: {s}\n  labels:\n    app: {n}\n    segment: {s}\nspec:\n  replicas: {r}\n{sts}  selector:\n    matchLabels:\n      app: {n}\n  template:\n    metadata:\n      labels:\n{labels}    spec:\n      containers:\n        - name: {app}\n          image: registry.bank.internal/{s}/{app}:1.{v}\n          ports:\n{ports}            - name: metrics\n              containerPort: 9100\n              protocol: TCP\n",
            n = w.name,
            s = w.segment,
            r = w.replicas,
            sts = if w.kind == Kind::StatefulSet {
                format!("  serviceName: {}\n", w.name)
            } else {
                String::new()
            },
            app = w.app,
            v = w.name.len() % 7,
        );
        let sports: String = w
            .ports
            .iter()
            .map(|(n, p, proto)| {
                format!(
                    "    - name: {n}\n      port: {p}\n      targetPort: {n}\n      protocol: {proto}\n"
                )
            })
            .collect();
        let _ = write!(
            svc,
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {n}\n  namespace: {s}\nspec:\n  type: ClusterIP\n  clusterIP: {ip}\n  selector:\n    app: {n}\n  ports:\n{sports}",
            n = w.name,
            s = w.segment,
            ip = w.cluster_ip.map(|i| i.to_string()).unwrap_or_default(),
        );
    }
    std::fs::write(inv.join("workloads.yaml"), wl)?;
    std::fs::write(inv.join("services.yaml"), svc)?;

    // One pod at a time: at 50,000 workloads the whole list as one JSON value took 1.8 GB.
    let mut pods = io::BufWriter::new(std::fs::File::create(inv.join("pods.json"))?);
    pods.write_all(
        b"{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"List\",\n  \"metadata\": {},\n  \"items\": [",
    )?;
    for (i, p) in bank.pods.iter().enumerate() {
        pods.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer_pretty(&mut pods, &pod_json(bank, p)).map_err(io::Error::other)?;
    }
    pods.write_all(b"\n  ]\n}\n")?;
    pods.flush()?;

    let mut csv = String::from("name,addresses,labels\n");
    let mut yaml = String::from("hosts:\n");
    for w in bank.workloads.iter().filter(|w| w.kind.is_vm()) {
        let labels = w.labels();
        let kv: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for (name, addr) in &w.hosts {
            let _ = writeln!(csv, "{name},{addr},{}", kv.join(";"));
            let _ = write!(
                yaml,
                "  - name: {name}\n    addresses: [\"{addr}\"]\n    labels:\n{}",
                labels
                    .iter()
                    .map(|(k, v)| format!("      {k}: {v}\n"))
                    .collect::<String>()
            );
        }
    }
    std::fs::write(dir.join("hosts.csv"), csv)?;
    std::fs::write(dir.join("hosts.yaml"), yaml)?;
    Ok(())
}

fn pod_json(bank: &Bank, p: &crate::model::Pod) -> Value {
    let w = &bank.workloads[p.workload];
    let mut labels = serde_json::Map::new();
    for (k, v) in w.labels() {
        labels.insert(k.to_string(), Value::String(v));
    }
    let (owner_kind, owner) = if w.kind == Kind::StatefulSet {
        ("StatefulSet", w.name.clone())
    } else {
        labels.insert("pod-template-hash".into(), Value::String(w.rs_hash.clone()));
        ("ReplicaSet", format!("{}-{}", w.name, w.rs_hash))
    };
    let mut meta = json!({
        "name": p.name,
        "namespace": w.segment,
        "labels": labels,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner, "controller": true}],
    });
    let ports: Vec<Value> = w
        .ports
        .iter()
        .map(|(n, port, proto)| json!({"name": n, "containerPort": port, "protocol": proto}))
        .collect();
    let mut status = json!({
        "phase": "Running",
        "podIP": p.ip.to_string(),
        "podIPs": [{"ip": p.ip.to_string()}],
        "hostIP": "",
        "startTime": rfc3339(p.start),
        "containerStatuses": [{"name": w.app, "ready": true, "restartCount": 0, "state": {"running": {"startedAt": rfc3339(p.start)}}}],
    });
    if let Some(end) = p.end {
        meta["deletionTimestamp"] = Value::String(rfc3339(end));
        status["phase"] = Value::String("Succeeded".into());
        status["containerStatuses"][0]["ready"] = Value::Bool(false);
        status["containerStatuses"][0]["state"] = json!({"terminated": {
            "exitCode": 0, "reason": "Completed",
            "startedAt": rfc3339(p.start), "finishedAt": rfc3339(end)}});
    }
    status["hostIP"] = Value::String(node_ip(&p.node));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": p.node, "containers": [{"name": w.app, "ports": ports}]},
        "status": status,
    })
}

fn node_ip(node: &str) -> String {
    let n: u32 = node.trim_start_matches("node-").parse().unwrap_or_default();
    format!("10.40.{}.{}", n / 250, n % 250 + 1)
}
