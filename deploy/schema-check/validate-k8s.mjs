// Validates Kubernetes objects against the Kubernetes OpenAPI schema, with the validators that
// `kubernetes-models` generates from it (pinned in package.json). Used by tests/deploy_files.rs.
//   node validate-k8s.mjs objects.json     (a JSON array of objects)
// Prints one line per object, "ok <kind>/<name>" or "invalid <kind>/<name>: <errors>"; exit 1
// if any object is invalid or of a kind the library does not know.
import { readFileSync } from 'node:fs';

const objects = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let failed = false;
for (const obj of objects) {
  const id = `${obj.kind}/${obj.metadata?.name}`;
  let Model;
  try {
    const mod = await import(`kubernetes-models/${obj.apiVersion}/${obj.kind}`);
    Model = mod[obj.kind];
  } catch (e) {
    console.log(`invalid ${id}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
    failed = true;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok ${id}`);
  } catch (e) {
    console.log(`invalid ${id}: ${e.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
