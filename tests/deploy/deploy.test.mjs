// The manifests under deploy/ (docs/deploy.md, "Istio and Envoy Gateway"):
// each validates against the published schemas, the broken fixtures under
// invalid/ are refused by the same checks, and the committed files are what
// `make deploy-manifests` writes from the example policy.
//
// Run by `make test-deploy` (node --test). Tools, overridable for a
// different layout: WARDEN (the CLI), PYTHON, KUBERNETES_VALIDATE.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { CORE_API_VERSIONS, problemsIn, readDocuments, unknownFieldProblems } from "./validate.mjs";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const DEPLOY = join(REPO, "deploy");
const INVALID = fileURLToPath(new URL("./invalid", import.meta.url));
const WARDEN = process.env.WARDEN ?? join(REPO, "target/release/warden");
const PYTHON = process.env.PYTHON ?? "python3";
const KUBERNETES_VALIDATE = process.env.KUBERNETES_VALIDATE ?? join(REPO, ".venv-deploy/bin/kubernetes-validate");
// The Kubernetes release whose schemas the core kinds are checked against.
const KUBERNETES_VERSION = "1.37.0";

function yamlFiles(folder) {
  return readdirSync(folder, { recursive: true })
    .filter((name) => name.endsWith(".yaml"))
    .sort()
    .map((name) => join(folder, name));
}

function run(command, args) {
  const out = spawnSync(command, args, { cwd: REPO, encoding: "utf8" });
  if (out.error) throw new Error(`${command}: ${out.error.message}`);
  return out;
}

// Core kinds with unknown fields refused (kubernetes-validate --strict);
// one line per problem, empty when valid or when the file has no core kind.
function strictCoreProblems(path) {
  const core = readDocuments(path).some((object) => CORE_API_VERSIONS.has(object?.apiVersion));
  if (!core) return [];
  const out = run(KUBERNETES_VALIDATE, ["--strict", "--quiet", "-k", KUBERNETES_VERSION, path]);
  return out.status === 0 ? [] : [`${out.stdout}${out.stderr}`.trim()];
}

// The TypeScript compiler takes seconds to start: one run for every file.
const UNKNOWN_FIELDS = unknownFieldProblems([...yamlFiles(DEPLOY), ...yamlFiles(INVALID)]);

function allProblems(path) {
  return [...problemsIn(path), ...UNKNOWN_FIELDS.get(path), ...strictCoreProblems(path)];
}

function compiledPolicy() {
  const out = run(WARDEN, ["compile", "examples/policy.yaml"]);
  assert.equal(out.status, 0, `warden compile failed (build it with \`make cli\`): ${out.stderr}`);
  return out.stdout;
}

test("every manifest under deploy/ validates against the published schemas", () => {
  const files = yamlFiles(DEPLOY);
  assert.equal(files.length, 4, `deploy/ holds ${files.map((f) => relative(REPO, f))}`);
  for (const path of files) {
    assert.deepEqual(allProblems(path), [], relative(REPO, path));
  }
});

for (const path of yamlFiles(INVALID)) {
  test(`invalid/${relative(INVALID, path)} is refused`, () => {
    // The first line names the problem the validators must report.
    const expected = readFileSync(path, "utf8").match(/^# expect: (.+)$/m)?.[1];
    assert.ok(expected, "the fixture needs a `# expect: <message>` line");
    const problems = allProblems(path).join("\n");
    assert.ok(problems.includes(expected), `wanted \`${expected}\`, got: ${problems || "no problem"}`);
  });
}

test("the committed manifests are what make deploy-manifests writes", () => {
  const scratch = mkdtempSync(join(tmpdir(), "warden-deploy-"));
  try {
    const config = join(scratch, "plugin-config.json");
    assert.equal(run(WARDEN, ["compile", "examples/policy.yaml", "-o", config]).status, 0);
    const out = run(PYTHON, [
      "tools/deploy_manifests.py", "--plugin-config", config,
      "--server", "examples/server/mcp_server.py", "--out", join(scratch, "deploy"),
    ]);
    assert.equal(out.status, 0, out.stderr);
    const written = yamlFiles(join(scratch, "deploy")).map((f) => relative(join(scratch, "deploy"), f));
    assert.deepEqual(yamlFiles(DEPLOY).map((f) => relative(DEPLOY, f)), written);
    for (const name of written) {
      assert.ok(
        readFileSync(join(DEPLOY, name), "utf8") === readFileSync(join(scratch, "deploy", name), "utf8"),
        `deploy/${name} is stale: regenerate it with \`make deploy-manifests\``,
      );
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

test("both control planes get the compiled policy, in header mode stream, failing closed", () => {
  const policy = JSON.parse(compiledPolicy());
  assert.equal(policy.filter.header_mode, "stream");
  const [plugin] = readDocuments(join(DEPLOY, "istio/wasmplugin.yaml"));
  assert.deepEqual(plugin.spec.pluginConfig, policy);
  assert.equal(plugin.spec.failStrategy, "FAIL_CLOSE");
  assert.match(plugin.spec.url, /^oci:\/\/[^@]+@sha256:[0-9a-f]{64}$/);
  const [extension] = readDocuments(join(DEPLOY, "envoy-gateway/envoyextensionpolicy.yaml"));
  const [wasm] = extension.spec.wasm;
  assert.deepEqual(wasm.config, policy);
  assert.equal(wasm.failOpen, false);
  assert.match(wasm.code.image.url, /^[^@]+@sha256:[0-9a-f]{64}$/);
  // The policy attaches to the route that httproute.yaml defines.
  const route = readDocuments(join(DEPLOY, "envoy-gateway/httproute.yaml")).find((o) => o.kind === "HTTPRoute");
  assert.deepEqual(extension.spec.targetRefs, [
    { group: "gateway.networking.k8s.io", kind: "HTTPRoute", name: route.metadata.name },
  ]);
});

test("the example server travels verbatim in its ConfigMap", () => {
  const [configMap] = readDocuments(join(DEPLOY, "kubernetes/mcp-server.yaml"));
  assert.equal(configMap.data["mcp_server.py"], readFileSync(join(REPO, "examples/server/mcp_server.py"), "utf8"));
});
