// Validates Kubernetes manifests with the validators that the
// @kubernetes-models packages compile from the published Istio CRDs, the
// Envoy Gateway and Gateway API Go API types, and the Kubernetes OpenAPI
// document (package.json pins them; docs/deploy.md names the versions).
// Every document must be of a kind listed here: an unknown kind is an error,
// not a pass. Core kinds are also checked with unknown fields refused by
// kubernetes-validate (PyPI) in deploy.test.mjs, because these compiled
// validators accept fields the schema does not name. For every kind, unknown
// fields are found by the TypeScript compiler instead: each document becomes
// an object literal of the package's declared type (generated from the same
// schema), and excess-property checking refuses any field the type lacks.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { parseAllDocuments } from "yaml";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";
import { EnvoyExtensionPolicy } from "@kubernetes-models/envoy-gateway/gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy";
import { GatewayClass } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GatewayClass";
import { Gateway } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";

// apiVersion/kind -> the model that validates it, and the module that
// declares its type (`I` + kind).
const KINDS = new Map([
  ["extensions.istio.io/v1alpha1/WasmPlugin", [WasmPlugin, "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin"]],
  ["gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy", [EnvoyExtensionPolicy, "@kubernetes-models/envoy-gateway/gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy"]],
  ["gateway.networking.k8s.io/v1/GatewayClass", [GatewayClass, "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GatewayClass"]],
  ["gateway.networking.k8s.io/v1/Gateway", [Gateway, "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway"]],
  ["gateway.networking.k8s.io/v1/HTTPRoute", [HTTPRoute, "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute"]],
  ["v1/ConfigMap", [ConfigMap, "kubernetes-models/v1/ConfigMap"]],
  ["v1/Service", [Service, "kubernetes-models/v1/Service"]],
  ["apps/v1/Deployment", [Deployment, "kubernetes-models/apps/v1/Deployment"]],
]);

const kindKey = (object) => `${object?.apiVersion}/${object?.kind}`;
const label = (path, object) => `${path}: ${object?.kind}/${object?.metadata?.name}`;

// Kinds whose schemas ship with kubernetes-validate (strict mode).
export const CORE_API_VERSIONS = new Set(["v1", "apps/v1"]);

// The documents of a YAML file, as plain objects; a YAML error throws.
export function readDocuments(path) {
  const docs = parseAllDocuments(readFileSync(path, "utf8"));
  return docs.map((doc) => {
    if (doc.errors.length > 0) {
      throw new Error(`${path}: ${doc.errors.map((e) => e.message).join("; ")}`);
    }
    return doc.toJS();
  });
}

// One line per problem (`file: Kind/name: message`); empty when valid.
export function problemsIn(path) {
  const problems = [];
  for (const object of readDocuments(path)) {
    const known = KINDS.get(kindKey(object));
    if (known === undefined) {
      problems.push(`${label(path, object)}: no schema for \`${kindKey(object)}\``);
      continue;
    }
    const [Model] = known;
    try {
      new Model(object).validate();
    } catch (error) {
      problems.push(`${label(path, object)}: ${error.message}`);
    }
  }
  return problems;
}

// Fields the declared types do not name, in every document of `paths` (one
// compiler run for all: it takes seconds). Returns path -> problem lines;
// documents of unknown kinds are left to problemsIn.
export function unknownFieldProblems(paths) {
  const imports = [];
  const lines = [];
  const origins = []; // line of the virtual source -> [path, object]
  for (const path of paths) {
    for (const object of readDocuments(path)) {
      const known = KINDS.get(kindKey(object));
      if (known === undefined) continue;
      const type = `I${object.kind}`;
      const alias = `T${imports.length}`;
      imports.push(`import type { ${type} as ${alias} } from ${JSON.stringify(known[1])};`);
      origins.push([path, object]);
      lines.push(`export const doc${origins.length - 1}: ${alias} = ${JSON.stringify(object)};`);
    }
  }
  // A virtual file beside node_modules, so the packages resolve from it.
  const file = fileURLToPath(new URL("./manifests.virtual.ts", import.meta.url));
  const source = [...imports, ...lines].join("\n");
  const host = ts.createCompilerHost({});
  const readSource = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    name === file ? ts.createSourceFile(name, source, language) : readSource(name, language, ...rest);
  const options = {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const program = ts.createProgram([file], options, host);
  const found = new Map(paths.map((path) => [path, []]));
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
    const line = diagnostic.file?.fileName === file
      ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line - imports.length
      : -1;
    const origin = origins[line];
    if (origin === undefined) {
      // Not about a document (an import that does not resolve): fail all.
      for (const problems of found.values()) problems.push(`type check: ${message}`);
      continue;
    }
    const [path, object] = origin;
    found.get(path).push(`${label(path, object)}: ${message}`);
  }
  return found;
}

// `node validate.mjs FILE...` prints the problems, exit 1 if any.
if (import.meta.url === `file://${process.argv[1]}`) {
  const paths = process.argv.slice(2);
  const unknownFields = unknownFieldProblems(paths);
  const problems = paths.flatMap((path) => [...problemsIn(path), ...unknownFields.get(path)]);
  for (const line of problems) console.error(line);
  process.exit(problems.length === 0 ? 0 : 1);
}
