// Test helpers: the events server (main.py) in a child process, a TCP proxy that can cut and
// refuse connections (a network drop), and a condition poller.

import {spawn, execFile} from 'node:child_process';
import {existsSync, openSync, closeSync, readFileSync} from 'node:fs';
import {mkdtemp, rm} from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const VENV_PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
export const PYTHON = process.env.EVENTS_PYTHON || (existsSync(VENV_PYTHON) ? VENV_PYTHON : 'python3');
const SECRET = 'client-test-secret-' + 'x'.repeat(40);
export const ADMIN = {email: 'admin@example.com', password: 'admin-password-1'};
export const PASSWORD = 'password123';

/** Resolves once check() is true (polled every 20 ms); rejects after timeout ms. */
export async function until(check, what, timeout = 20000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const {port} = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** main.py serving on a free port with its own data directory (SQLite) and an admin. */
export class Server {
  static async start(...args) {
    const server = new Server(args);
    server.dir = await mkdtemp(path.join(os.tmpdir(), 'events-client-'));
    server.port = await freePort();
    await promisify(execFile)(PYTHON, [
      'main.py', 'create-admin', '--email', ADMIN.email, '--password', ADMIN.password,
      `--data-dir=${server.dir}`], {cwd: ROOT, env: server.env()});
    await server.run();
    return server;
  }

  constructor(args) {
    this.args = args;
    this.users = 0;
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  env() { return {...process.env, JWT_SECRET: SECRET, PYTHONUNBUFFERED: '1'}; }

  async run() {
    const log = openSync(path.join(this.dir, 'server.log'), 'a');
    this.proc = spawn(PYTHON, ['main.py', `--port=${this.port}`, `--data-dir=${this.dir}`,
                               '--rate-limits=off', ...this.args],
                      {cwd: ROOT, env: this.env(), stdio: ['ignore', log, log]});
    closeSync(log);
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
    await until(async () => {
      if (this.proc.exitCode !== null) throw new Error(`server exited:\n${this.log()}`);
      try {
        return (await fetch(`${this.url}/health`)).status === 200;
      } catch (err) {
        return false;
      }
    }, 'the server to start');
  }

  log() { return readFileSync(path.join(this.dir, 'server.log'), 'utf8'); }

  /** SIGTERM (the server closes every socket with 1001 and drains), then waits for the exit. */
  async stop() {
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM');
    await this.exited;
  }

  /** Stops the server cleanly and starts it again on the same port and data directory. */
  async restart() {
    await this.stop();
    await this.run();
  }

  async close() {
    await this.stop();
    await rm(this.dir, {recursive: true, force: true});
  }

  async call(method, route, body, token) {
    const headers = {'Content-Type': 'application/json'};
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(this.url + route, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
    return {status: response.status, body: await response.json()};
  }

  async login(email, password) {
    const {status, body} = await this.call('POST', '/api/v1/auth/login', {email, password});
    if (status !== 200) throw new Error(`login failed: ${JSON.stringify(body)}`);
    return body.data;
  }

  async register(name) {
    this.users += 1;
    const email = `user${this.users}-${process.pid}@example.com`;
    const {status, body} = await this.call('POST', '/api/v1/auth/register',
                                           {name, email, password: PASSWORD, age: 30});
    if (status !== 201) throw new Error(`register failed: ${JSON.stringify(body)}`);
    return body.data;
  }

  /** Sends a system.alert to everyone through POST /ws/broadcast. */
  async broadcast(adminToken, message) {
    const {status, body} = await this.call('POST', '/ws/broadcast', {message}, adminToken);
    if (status !== 200) throw new Error(`broadcast failed: ${JSON.stringify(body)}`);
  }
}

/** A TCP proxy in front of a server: down() cuts every connection and refuses new ones. */
export class Proxy {
  static async start(targetPort) {
    const proxy = new Proxy(targetPort);
    await new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = proxy.server.address().port;
    return proxy;
  }

  constructor(targetPort) {
    this.target = targetPort;
    this.sockets = new Set();
    this.isDown = false;
    this.server = net.createServer((client) => this.pipe(client));
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  pipe(client) {
    if (this.isDown) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target, '127.0.0.1');
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      this.sockets.add(a);
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        this.sockets.delete(a);
        b.destroy();
      });
    }
  }

  down() {
    this.isDown = true;
    for (const socket of this.sockets) socket.destroy();
  }

  up() { this.isDown = false; }

  close() {
    this.down();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

/** Collects a client's events from events(): alerts and room messages by number. */
export function collect(client) {
  const seen = {alerts: [], room: [], recoveries: [], all: [], error: null};
  seen.done = (async () => {
    try {
      for await (const event of client.events()) {
        seen.all.push(event);
        if (event.type === 'system.alert') seen.alerts.push(Number(event.data.message));
        else if (event.type === 'channel.message') seen.room.push(event.data.body.n);
        else if (event.type === 'recovery') seen.recoveries.push(event.data);
      }
    } catch (err) {
      seen.error = err;
    }
  })();
  return seen;
}

export function range(start, end) {
  return Array.from({length: end - start}, (_, i) => start + i);
}
