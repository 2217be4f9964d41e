#!/usr/bin/env node
// MCP client of the official TypeScript SDK (@modelcontextprotocol/sdk, see
// package.json), driven by a JSON plan on stdin like mcp2_client.py; prints
// JSON results on stdout. Plan and result format: ../README.md.
//
//   echo '{"url":"http://127.0.0.1:10000/mcp","sessions":[{"token":"...","steps":[{"op":"list_tools"}]}]}' \
//     | node tests/e2e/clients/ts/mcp_ts_client.mjs
//
// Each session is Client + StreamableHTTPClientTransport: `initialize` (the
// SDK's newest protocol revision), `Mcp-Session-Id`, the GET SSE stream, and
// a DELETE when the session ends. The bearer token is a plain Authorization
// header (requestInit.headers); no auth provider is configured, so a 401 is
// an error the SDK raises, never an OAuth discovery.

import { readFileSync } from 'node:fs';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

// The SDK's package.json is not in its `exports`; read the installed copy.
const SDK_VERSION = JSON.parse(
    readFileSync(new URL('./node_modules/@modelcontextprotocol/sdk/package.json', import.meta.url), 'utf8')
).version;
const SDK = `@modelcontextprotocol/sdk ${SDK_VERSION}`;

// A fetch that records every HTTP exchange the SDK makes (the `http` list).
function recordingFetch(log) {
    return async (url, init = {}) => {
        const headers = new Headers(init.headers ?? {});
        let rpcMethod = null;
        if (typeof init.body === 'string') {
            try {
                const body = JSON.parse(init.body);
                rpcMethod = Array.isArray(body) ? body.map(m => m.method) : (body.method ?? null);
            } catch {
                rpcMethod = null;
            }
        }
        const entry = {
            method: (init.method ?? 'GET').toUpperCase(),
            mcp_method: headers.get('mcp-method'),
            rpc_method: rpcMethod,
            status: null,
            content_type: null
        };
        log.push(entry);
        const response = await fetch(url, init);
        entry.status = response.status;
        entry.content_type = response.headers.get('content-type');
        entry.www_authenticate = response.headers.get('www-authenticate');
        return response;
    };
}

// McpError's message is "MCP error <code>: <message>"; the JSON-RPC message is what follows.
function errorResult(op, error) {
    if (error instanceof McpError) {
        const prefix = `MCP error ${error.code}: `;
        const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
        return { op, ok: false, error: { code: error.code, message, data: error.data ?? null }, sdk_message: error.message };
    }
    // StreamableHTTPError keeps the name `Error`: report its class instead.
    const name = error?.constructor?.name ?? error?.name ?? typeof error;
    const out = { op, ok: false, exception: `${name}: ${error?.message ?? String(error)}` };
    if (error instanceof StreamableHTTPError) {
        out.http_status = error.code;
    }
    return out;
}

function contentText(result) {
    const parts = [];
    for (const item of result?.content ?? []) {
        if (typeof item?.text === 'string') parts.push(item.text);
    }
    for (const item of result?.contents ?? []) {
        if (typeof item?.text === 'string') parts.push(item.text);
    }
    for (const message of result?.messages ?? []) {
        if (typeof message?.content?.text === 'string') parts.push(message.content.text);
    }
    return parts.join('\n');
}

async function runSteps(client, steps, timeoutMs) {
    const options = { timeout: timeoutMs };
    const calls = {
        list_tools: () => client.listTools({}, options),
        call_tool: step => client.callTool({ name: step.name, arguments: step.arguments ?? {} }, undefined, options),
        read_resource: step => client.readResource({ uri: step.uri }, options),
        get_prompt: step => client.getPrompt({ name: step.name, arguments: step.arguments ?? {} }, options),
        ping: () => client.ping(options)
    };
    const results = [];
    for (const step of steps) {
        const op = step.op ?? '';
        const call = calls[op];
        if (!call) {
            results.push({ op, ok: false, exception: `unknown op \`${op}\`` });
            continue;
        }
        let value;
        try {
            value = await call(step);
        } catch (error) {
            results.push(errorResult(op, error));
            continue;
        }
        const entry = { op, ok: true };
        if (op === 'list_tools') {
            entry.names = value.tools.map(tool => tool.name);
        } else {
            entry.text = contentText(value);
            entry.is_error = Boolean(value?.isError);
        }
        results.push(entry);
    }
    return results;
}

async function runSession(url, plan, timeoutMs) {
    const http = [];
    const out = { sdk: SDK, mode: plan.mode ?? 'sdk-default', connected: false, http, results: [] };
    const headers = {};
    if (plan.token !== undefined && plan.token !== null) {
        headers.Authorization = `Bearer ${plan.token}`;
    }
    Object.assign(headers, plan.headers ?? {});
    const transport = new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers },
        fetch: recordingFetch(http),
        // A dropped GET stream is not retried for long: the run must end.
        reconnectionOptions: { initialReconnectionDelay: 200, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1.5, maxRetries: 1 }
    });
    const transportErrors = [];
    let closing = false; // closing aborts the GET stream: that error is expected
    const client = new Client({ name: 'warden-e2e-ts', version: '0' }, { capabilities: {} });
    client.onerror = error => {
        if (!closing) transportErrors.push(`${error?.constructor?.name ?? 'Error'}: ${error?.message ?? String(error)}`);
    };
    try {
        await client.connect(transport, { timeout: timeoutMs });
    } catch (error) {
        out.connect_error = errorResult('connect', error);
        closing = true;
        await client.close().catch(() => {});
        out.transport_errors = transportErrors;
        return out;
    }
    out.connected = true;
    out.protocol_version = transport.protocolVersion ?? null;
    out.session_id = transport.sessionId ?? null;
    out.server = client.getServerVersion() ?? null;
    try {
        out.results = await runSteps(client, plan.steps ?? [], timeoutMs);
        out.session_id_after = transport.sessionId ?? null;
        await transport.terminateSession();
    } catch (error) {
        const result = errorResult('close', error);
        out.teardown_error = result.exception ?? result.error?.message;
    } finally {
        closing = true;
        await client.close().catch(() => {});
    }
    out.transport_errors = transportErrors;
    return out;
}

async function main() {
    const plan = JSON.parse(readFileSync(0, 'utf8'));
    const timeoutMs = Math.round(Number(plan.timeout ?? 20) * 1000);
    const sessions = [];
    for (const session of plan.sessions ?? []) {
        sessions.push(await runSession(plan.url, session, timeoutMs));
    }
    return { sdk: SDK, sessions };
}

main().then(
    output => process.stdout.write(`${JSON.stringify(output)}\n`, () => process.exit(0)),
    error => {
        process.stderr.write(`${error?.stack ?? String(error)}\n`);
        process.exit(1);
    }
);
