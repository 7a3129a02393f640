// The events.v1.protobuf codec (Node): requests to binary Request messages, binary Event
// messages to the JSON protocol's {type, id?, data, timestamp, channel?, offset?}.
//
// index.js imports this module only when connect() is given {protocol: 'protobuf'}, so a
// browser page never loads it. The schema is events.proto beside this file, a copy of the
// server's proto/events.proto (a test keeps the two identical).

import {readFile} from 'node:fs/promises';

const FIELDS = {'auth.refresh': 'auth_refresh'};

/** A payload as JSON shows it: `<key>_json` text parsed back to `<key>`, empty lists and
 * protobufjs's virtual oneof names dropped. */
function plain(value) {
  if (Array.isArray(value)) return value.map(plain);
  if (value === null || typeof value !== 'object') return value;
  const out = {};
  for (const [key, item] of Object.entries(value)) {
    if (key.startsWith('_')) continue;
    if (key.endsWith('_json')) out[key.slice(0, -5)] = item ? JSON.parse(item) : null;
    else if (!(Array.isArray(item) && item.length === 0)) out[key] = plain(item);
  }
  return out;
}

function bytesOf(raw) {
  if (raw instanceof Uint8Array) return raw;
  if (raw instanceof ArrayBuffer) return new Uint8Array(raw);
  if (ArrayBuffer.isView(raw)) return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  throw new TypeError('not a binary frame');
}

/**
 * Builds the codec from protobufjs (the module, or imported here when not given) and a
 * .proto file (default: the events.proto of this package).
 */
export async function protobufCodec(protobuf, protoPath) {
  const lib = protobuf || (await import('protobufjs')).default;
  const text = await readFile(protoPath || new URL('./events.proto', import.meta.url), 'utf8');
  const root = lib.parse(text, {keepCase: true}).root;
  const Event = root.lookupType('events.v1.Event');
  const Request = root.lookupType('events.v1.Request');
  return {
    protocols: ['events.v1.protobuf'],
    encode(id, type, data) {
      let body = data;
      if (type === 'publish') body = {channel: data.channel, data_json: JSON.stringify(data.data)};
      const request = {[FIELDS[type] || type]: body};
      if (id !== undefined) request.id = id;
      const problem = Request.verify(request);
      if (problem) throw new Error(`cannot encode ${type}: ${problem}`);
      return Request.encode(Request.create(request)).finish();
    },
    decode(raw) {
      if (typeof raw === 'string') return JSON.parse(raw);
      const event = Event.toObject(Event.decode(bytesOf(raw)),
                                   {longs: Number, defaults: true, oneofs: true, arrays: true});
      const message = {type: event.type};
      if (event.id !== undefined && event.id !== null) message.id = event.id;
      const which = event.data;
      message.data = which === 'data_json' ? JSON.parse(event.data_json) : plain(event[which] || {});
      message.timestamp = event.timestamp;
      if (event.channel !== undefined && event.channel !== null) message.channel = event.channel;
      if (event.offset !== undefined && event.offset !== null) message.offset = event.offset;
      return message;
    },
  };
}
