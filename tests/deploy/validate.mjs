// Validates Kubernetes manifests with the validators that the
// @kubernetes-models packages compile from the published Istio CRDs, the
// Envoy Gateway and Gateway API Go API types, and the Kubernetes OpenAPI
// document (package.json pins them; docs/deploy.md names the versions).
// Every document must be of a kind listed here: an unknown kind is an error,
// not a pass. Core kinds are also checked with unknown fields refused by
// kubernetes-validate (PyPI) in deploy.test.mjs, because these compiled
// validators accept fields the schema does not name.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";
import { EnvoyExtensionPolicy } from "@kubernetes-models/envoy-gateway/gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy";
import { GatewayClass } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GatewayClass";
import { Gateway } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";

// apiVersion/kind -> the model that validates it.
const MODELS = new Map([
  ["extensions.istio.io/v1alpha1/WasmPlugin", WasmPlugin],
  ["gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy", EnvoyExtensionPolicy],
  ["gateway.networking.k8s.io/v1/GatewayClass", GatewayClass],
  ["gateway.networking.k8s.io/v1/Gateway", Gateway],
  ["gateway.networking.k8s.io/v1/HTTPRoute", HTTPRoute],
  ["v1/ConfigMap", ConfigMap],
  ["v1/Service", Service],
  ["apps/v1/Deployment", Deployment],
]);

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
    const key = `${object?.apiVersion}/${object?.kind}`;
    const label = `${path}: ${object?.kind}/${object?.metadata?.name}`;
    const Model = MODELS.get(key);
    if (Model === undefined) {
      problems.push(`${label}: no schema for \`${key}\``);
      continue;
    }
    try {
      new Model(object).validate();
    } catch (error) {
      problems.push(`${label}: ${error.message}`);
    }
  }
  return problems;
}

// `node validate.mjs FILE...` prints the problems, exit 1 if any.
if (import.meta.url === `file://${process.argv[1]}`) {
  const problems = process.argv.slice(2).flatMap(problemsIn);
  for (const line of problems) console.error(line);
  process.exit(problems.length === 0 ? 0 : 1);
}
