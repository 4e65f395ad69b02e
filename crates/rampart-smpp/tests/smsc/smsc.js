// A small SMSC for rampart-smpp's integration tests, built on node-smpp in server mode.
//
// It answers binds, submit_sm (optionally throttling the first N), enquire_link and unbind,
// sends a delivery receipt for every accepted submit_sm, sends MO deliver_sm on request, and
// writes one JSON line to stdout for everything it sees, so the Rust test can assert exact bytes.
//
// Usage: node smsc.js '<json options>'
//   port             TCP port (0 = any free port; the chosen port is printed in the "listening" line)
//   system_id        expected system_id (default "rampart")
//   password         expected password (default "secret")
//   tls_key, tls_cert  PEM file paths: serve TLS instead of plain TCP
//   throttle_first   answer the first N submit_sm with ESME_RTHROTTLED (0x58)
//   silent_first     never answer the first N submit_sm (the client's response timeout fires)
//   respond_after_ms answer each submit_sm this many milliseconds late
//   undeliverable    destination_addr whose receipts say stat:UNDELIV err:001
//   receipt_tlvs     also put receipted_message_id and message_state TLVs in receipts
//   no_receipts      send no receipts at all
//
// Control, one JSON object per line on stdin:
//   {"cmd":"mo","source":"447700900001","destination":"12345","data_coding":0,
//    "esm_class":0,"short_message_hex":"...","tlvs":{"sar_msg_ref_num":1,...}}
//   {"cmd":"enquire_link"}      send enquire_link to every bound session
//   {"cmd":"flood_mo","messages":M,"parts":P,"total":T,"part_bytes":B}
//                               hostile: parts 1..P (P < T) of M concatenated MO messages (UDH
//                               with a 16-bit reference) that never complete; records
//                               "flood_done" once every deliver_sm is answered
//   {"cmd":"flood_receipts","count":N}
//                               hostile: N delivery receipts for ids never issued (bogus-0..),
//                               then "flood_done"
'use strict';

const fs = require('fs');
const readline = require('readline');
const smpp = require('smpp');

const options = JSON.parse(process.argv[2] || '{}');
const expectedSystemId = options.system_id || 'rampart';
const expectedPassword = options.password || 'secret';

// Keep message fields as raw bytes and time fields as raw strings: the tests assert what was on
// the wire, not node-smpp's decoding of it.
for (const command of ['submit_sm', 'deliver_sm']) {
  const params = smpp.commands[command].params;
  delete params.short_message.filter;
  delete params.validity_period.filter;
  delete params.schedule_delivery_time.filter;
}
delete smpp.tlvs.message_payload.filter;

function record(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function jsonValue(value) {
  if (Buffer.isBuffer(value)) {
    return { hex: value.toString('hex') };
  }
  return value;
}

function tlvsOf(pdu) {
  const tlvs = {};
  for (const key of Object.keys(pdu)) {
    if (key in smpp.tlvs || /^\d+$/.test(key)) {
      tlvs[key] = jsonValue(pdu[key]);
    }
  }
  return tlvs;
}

const sessions = new Set();
let submitCount = 0;
let messageCounter = 0;
// submit_sm received and not answered yet, to check the client's window.
let outstanding = 0;

function receiverFor(preferred) {
  if (preferred && preferred.canReceive) {
    return preferred;
  }
  for (const candidate of sessions) {
    if (candidate.canReceive) {
      return candidate;
    }
  }
  return null;
}

function sendReceipt(preferred, submit, messageId) {
  const target = receiverFor(preferred);
  if (!target) {
    record({ event: 'receipt_dropped', message_id: messageId, reason: 'no receiver bound' });
    return;
  }
  const undeliverable = options.undeliverable && submit.destination_addr === options.undeliverable;
  const stat = undeliverable ? 'UNDELIV' : 'DELIVRD';
  const err = undeliverable ? '001' : '000';
  const text = `id:${messageId} sub:001 dlvr:${undeliverable ? '000' : '001'} ` +
    `submit date:2501011200 done date:2501011201 stat:${stat} err:${err} text:`;
  const pdu = {
    source_addr_ton: submit.dest_addr_ton,
    source_addr_npi: submit.dest_addr_npi,
    source_addr: submit.destination_addr,
    dest_addr_ton: submit.source_addr_ton,
    dest_addr_npi: submit.source_addr_npi,
    destination_addr: submit.source_addr,
    esm_class: 0x04,
    data_coding: 0,
    short_message: Buffer.from(text, 'ascii'),
  };
  if (options.receipt_tlvs) {
    pdu.receipted_message_id = messageId;
    pdu.message_state = undeliverable ? 5 : 2;
  }
  target.session.deliver_sm(pdu, (resp) => {
    record({ event: 'deliver_sm_resp', kind: 'receipt', message_id: messageId, command_status: resp.command_status });
  });
  record({ event: 'receipt_sent', message_id: messageId, stat });
}

function onSubmit(state, pdu) {
  submitCount += 1;
  const entry = {
    event: 'submit_sm',
    sequence_number: pdu.sequence_number,
    source_addr_ton: pdu.source_addr_ton,
    source_addr_npi: pdu.source_addr_npi,
    source_addr: pdu.source_addr,
    dest_addr_ton: pdu.dest_addr_ton,
    dest_addr_npi: pdu.dest_addr_npi,
    destination_addr: pdu.destination_addr,
    esm_class: pdu.esm_class,
    registered_delivery: pdu.registered_delivery,
    data_coding: pdu.data_coding,
    validity_period: pdu.validity_period,
    short_message: pdu.short_message.toString('hex'),
    tlvs: tlvsOf(pdu),
  };
  if (options.silent_first && submitCount <= options.silent_first) {
    entry.command_status = null;
    record(entry);
    return;
  }
  outstanding += 1;
  entry.outstanding = outstanding;
  const answer = (response) => {
    outstanding -= 1;
    state.session.send(response);
  };
  const delay = options.respond_after_ms || 0;
  if (options.throttle_first && submitCount <= options.throttle_first) {
    entry.command_status = 0x58;
    record(entry);
    setTimeout(() => answer(pdu.response({ command_status: 0x58 })), delay);
    return;
  }
  messageCounter += 1;
  const messageId = `m${process.pid.toString(16)}x${messageCounter}`;
  entry.command_status = 0;
  entry.message_id = messageId;
  record(entry);
  setTimeout(() => {
    answer(pdu.response({ message_id: messageId }));
    if (!options.no_receipts && pdu.registered_delivery & 0x01) {
      setTimeout(() => sendReceipt(state, pdu, messageId), 5);
    }
  }, delay);
}

function onSession(session) {
  const state = { session, bound: false, canReceive: false };
  sessions.add(state);
  const bindHandler = (mode) => (pdu) => {
    const ok = pdu.system_id === expectedSystemId && pdu.password === expectedPassword;
    record({ event: 'bind', mode, ok, system_id: pdu.system_id, interface_version: pdu.interface_version });
    if (!ok) {
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      return;
    }
    state.bound = true;
    state.canReceive = mode !== 'transmitter';
    session.send(pdu.response({ system_id: 'test-smsc' }));
  };
  session.on('bind_transceiver', bindHandler('transceiver'));
  session.on('bind_transmitter', bindHandler('transmitter'));
  session.on('bind_receiver', bindHandler('receiver'));
  session.on('submit_sm', (pdu) => {
    if (!state.bound) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    onSubmit(state, pdu);
  });
  session.on('enquire_link', (pdu) => {
    record({ event: 'enquire_link' });
    session.send(pdu.response());
  });
  session.on('unbind', (pdu) => {
    record({ event: 'unbind' });
    state.bound = false;
    state.canReceive = false;
    session.send(pdu.response(), () => session.close());
  });
  session.on('close', () => {
    sessions.delete(state);
    record({ event: 'session_closed' });
  });
  session.on('error', (error) => {
    record({ event: 'session_error', message: String(error && error.message) });
  });
}

function sendMo(command) {
  const target = receiverFor(null);
  if (!target) {
    record({ event: 'mo_dropped', reason: 'no receiver bound' });
    return;
  }
  const pdu = {
    source_addr_ton: command.source_ton === undefined ? 1 : command.source_ton,
    source_addr_npi: command.source_npi === undefined ? 1 : command.source_npi,
    source_addr: command.source,
    dest_addr_ton: command.destination_ton || 0,
    dest_addr_npi: command.destination_npi || 0,
    destination_addr: command.destination,
    esm_class: command.esm_class || 0,
    data_coding: command.data_coding || 0,
    short_message: Buffer.from(command.short_message_hex || '', 'hex'),
  };
  for (const [key, value] of Object.entries(command.tlvs || {})) {
    pdu[key] = key === 'message_payload' ? Buffer.from(value, 'hex') : value;
  }
  target.session.deliver_sm(pdu, (resp) => {
    record({ event: 'deliver_sm_resp', kind: 'mo', command_status: resp.command_status });
  });
  record({ event: 'mo_sent' });
}

// Sends `pdus` as deliver_sm to the receiver, and records "flood_done" once all are answered.
function flood(kind, pdus) {
  const target = receiverFor(null);
  if (!target) {
    record({ event: 'flood_dropped', kind, reason: 'no receiver bound' });
    return;
  }
  let answered = 0;
  let failed = 0;
  for (const pdu of pdus) {
    target.session.deliver_sm(pdu, (resp) => {
      answered += 1;
      if (resp.command_status !== 0) {
        failed += 1;
      }
      if (answered === pdus.length) {
        record({ event: 'flood_done', kind, answered, failed });
      }
    });
  }
}

function floodMo(command) {
  const pdus = [];
  const body = Buffer.alloc(command.part_bytes || 100, 0x41);
  for (let message = 0; message < command.messages; message += 1) {
    for (let sequence = 1; sequence <= command.parts; sequence += 1) {
      const udh = Buffer.from([0x06, 0x08, 0x04, (message >> 8) & 0xff, message & 0xff,
        command.total, sequence]);
      pdus.push({
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: '447700900001',
        dest_addr_ton: 0,
        dest_addr_npi: 1,
        destination_addr: '12345',
        esm_class: 0x40,
        data_coding: 0x04,
        short_message: Buffer.concat([udh, body]),
      });
    }
  }
  flood('mo', pdus);
}

function floodReceipts(command) {
  const pdus = [];
  for (let n = 0; n < command.count; n += 1) {
    const text = `id:bogus-${n} sub:001 dlvr:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:`;
    pdus.push({
      source_addr_ton: 1,
      source_addr_npi: 1,
      source_addr: '447700900001',
      dest_addr_ton: 5,
      dest_addr_npi: 0,
      destination_addr: 'Rampart',
      esm_class: 0x04,
      data_coding: 0,
      short_message: Buffer.from(text, 'ascii'),
    });
  }
  flood('receipts', pdus);
}

function onControl(line) {
  if (!line.trim()) {
    return;
  }
  let command;
  try {
    command = JSON.parse(line);
  } catch (error) {
    record({ event: 'control_error', message: String(error.message) });
    return;
  }
  if (command.cmd === 'mo') {
    sendMo(command);
  } else if (command.cmd === 'flood_mo') {
    floodMo(command);
  } else if (command.cmd === 'flood_receipts') {
    floodReceipts(command);
  } else if (command.cmd === 'enquire_link') {
    for (const state of sessions) {
      state.session.enquire_link({}, (resp) => {
        record({ event: 'enquire_link_resp', command_status: resp.command_status });
      });
    }
  } else {
    record({ event: 'control_error', message: `unknown cmd ${command.cmd}` });
  }
}

const serverOptions = {};
if (options.tls_key && options.tls_cert) {
  serverOptions.key = fs.readFileSync(options.tls_key);
  serverOptions.cert = fs.readFileSync(options.tls_cert);
}
const server = smpp.createServer(serverOptions, onSession);
server.on('error', (error) => {
  record({ event: 'server_error', message: String(error.message) });
  process.exit(2);
});
server.listen(options.port || 0, '127.0.0.1', () => {
  record({ event: 'listening', port: server.address().port, tls: Boolean(serverOptions.key) });
});

readline.createInterface({ input: process.stdin }).on('line', onControl);
// The test owns this process: when it closes our stdin (or dies), we go too.
process.stdin.on('end', () => process.exit(0));
