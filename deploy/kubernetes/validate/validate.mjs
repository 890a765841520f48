// Validates Kubernetes manifests against the API schemas: each YAML
// document is built into its kubernetes-models class (generated from the
// official OpenAPI specs) and validated. Usage: node validate.mjs FILE...
import fs from "node:fs";
import YAML from "yaml";

const models = {
  "v1/Namespace": ["kubernetes-models/v1/Namespace", "Namespace"],
  "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap", "ConfigMap"],
  "v1/PersistentVolumeClaim": ["kubernetes-models/v1/PersistentVolumeClaim", "PersistentVolumeClaim"],
  "apps/v1/DaemonSet": ["kubernetes-models/apps/v1/DaemonSet", "DaemonSet"],
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment", "Deployment"],
  "monitoring.coreos.com/v1/PodMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor", "PodMonitor"],
};

let failed = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.error(`${file}: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (!obj) continue;
    const key = `${obj.apiVersion}/${obj.kind}`;
    if (!models[key]) {
      console.error(`${file}: no schema for ${key}`);
      failed++;
      continue;
    }
    const [module, name] = models[key];
    try {
      const Model = (await import(module))[name];
      new Model(obj).validate();
      checked++;
    } catch (e) {
      console.error(`${file}: ${key} ${obj.metadata?.name}: ${e.message}`);
      failed++;
    }
  }
}
console.log(`${checked} documents valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
