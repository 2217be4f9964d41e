#!/usr/bin/env node
// What an MCP TypeScript SDK server does with a request: the reader side of
// the differential tests in this folder (see sdk_reader.py for the Python
// SDKs; same input and output lines).
//
// A real McpServer of the official SDK (installed for the end-to-end client
// in tests/e2e/clients/ts, imported from there by path) with the tools
// `deploy` (a zod object schema for the same signature as the Python
// `deploy`), `delete_repo` and `read_file`, concrete resources and `{name}`
// templates under docs://public/, docs://internal/, file:///shared/ and
// file:///etc/; a real SDK Client sends each request over the SDK's
// in-memory transport. So the server's own request schemas, its tool lookup
// (`_registeredTools[name]`), its argument validation (`safeParseAsync` of
// the input schema) and its resource matching (`new URL(uri)`, the exact
// `toString()` lookup, then `UriTemplate.match`) decide what runs.
//
// Input, one JSON object a line: {"params": {...}} or {"params_text": "..."}
// (parsed with JSON.parse) for tools/call, {"uri": "..."} for
// resources/read, {"path": "..."} for a file path read by Node's own
// readers. Output, one JSON object a line: {"refused": why}, or
// {"tool", "arguments"} / {"resource", "params", "uri"} as received, or
// {"paths": {reader: resolved path or null}}.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

const MODULES = new URL('../e2e/clients/ts/node_modules/', import.meta.url);
const load = (file) => import(new URL(file, MODULES).href);

const { McpServer, ResourceTemplate } = await load('@modelcontextprotocol/sdk/dist/esm/server/mcp.js');
const { Client } = await load('@modelcontextprotocol/sdk/dist/esm/client/index.js');
const { InMemoryTransport } = await load('@modelcontextprotocol/sdk/dist/esm/inMemory.js');
const { CallToolResultSchema, ReadResourceResultSchema } = await load('@modelcontextprotocol/sdk/dist/esm/types.js');
const { z } = await load('zod/index.js');

let received = [];

const server = new McpServer({ name: 'readers', version: '0.0.0' });

const Options = z.object({ force: z.boolean().default(false), level: z.number().int().default(0) });
server.registerTool(
    'deploy',
    {
        inputSchema: {
            environment: z.string().default('staging'),
            force: z.boolean().default(false),
            replicas: z.number().int().default(1),
            ratio: z.number().default(1.0),
            size: z.number().int().default(1),
            options: Options.nullable().default(null),
            tags: z.array(z.string()).nullable().default(null),
            owner: z.string().nullable().default('nobody'),
        },
    },
    async (args) => {
        received.push({ tool: 'deploy', arguments: args });
        return { content: [{ type: 'text', text: 'ok' }] };
    }
);
server.registerTool('delete_repo', { inputSchema: { repo: z.string().default('') } }, async (args) => {
    received.push({ tool: 'delete_repo', arguments: args });
    return { content: [{ type: 'text', text: 'ok' }] };
});
server.registerTool('read_file', { inputSchema: { path: z.string().default('') } }, async (args) => {
    received.push({ tool: 'read_file', arguments: args });
    return { content: [{ type: 'text', text: 'ok' }] };
});

for (const uri of ['docs://public/intro', 'docs://internal/roadmap', 'file:///shared/a.txt', 'file:///etc/passwd']) {
    server.registerResource(uri, uri, {}, async (url) => {
        received.push({ resource: uri, params: {}, uri: url.href });
        return { contents: [{ uri: url.href, text: 'ok' }] };
    });
}
for (const template of ['docs://public/{name}', 'docs://internal/{name}', 'file:///shared/{name}', 'file:///etc/{name}']) {
    server.registerResource(template, new ResourceTemplate(template, { list: undefined }), {}, async (url, params) => {
        received.push({ resource: template, params, uri: url.href });
        return { contents: [{ uri: url.href, text: 'ok' }] };
    });
}

const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
await server.connect(serverSide);
const client = new Client({ name: 'readers', version: '0.0.0' });
await client.connect(clientSide);

// A file path as Node's own readers resolve it: POSIX and Windows path
// normalisation, after decodeURIComponent, and as a file: URL.
function pathReadings(raw) {
    const attempt = (f) => {
        try {
            return f();
        } catch {
            return null;
        }
    };
    return {
        'node posix.resolve': attempt(() => path.posix.resolve('/', raw)),
        'node posix.resolve(decodeURIComponent)': attempt(() => path.posix.resolve('/', decodeURIComponent(raw))),
        'node win32.resolve': attempt(() => path.win32.resolve('C:\\', raw).slice(2).replaceAll('\\', '/')),
        'node fileURLToPath(new URL)': attempt(() => fileURLToPath(new URL(`file://${raw}`))),
        'node new URL(raw, file:///).pathname': attempt(() => decodeURIComponent(new URL(raw, 'file:///').pathname)),
    };
}

async function readOne(line) {
    received = [];
    if ('path' in line) {
        return { paths: pathReadings(line.path) };
    }
    try {
        if ('uri' in line) {
            await client.request({ method: 'resources/read', params: { uri: line.uri } }, ReadResourceResultSchema);
        } else {
            const params = 'params' in line ? line.params : JSON.parse(line.params_text);
            const result = await client.request({ method: 'tools/call', params }, CallToolResultSchema);
            if (result.isError && received.length === 0) {
                return { refused: result.content?.[0]?.text?.split(':')[0] ?? 'tool error' };
            }
        }
    } catch (error) {
        if (received.length > 0) {
            throw new Error(`${JSON.stringify(line)}: refused after running: ${error}`);
        }
        return { refused: String(error?.code ?? error?.name ?? error) };
    }
    if (received.length !== 1) {
        throw new Error(`${JSON.stringify(line)}: ran ${received.length} handlers`);
    }
    return received[0];
}

const out = [];
for (const raw of readFileSync(0, 'utf8').split('\n')) {
    if (raw.trim()) {
        out.push(JSON.stringify(await readOne(JSON.parse(raw))));
    }
}
process.stdout.write(out.join('\n') + '\n');
await client.close();
