// A scripted Element-like Matrix user: matrix-js-sdk with its Rust crypto
// (matrix-sdk-crypto, as in Element Web), one user per process, driven over
// stdin/stdout by tests/interop/jsclient.py.
//
// Protocol: one JSON command a line on stdin, {"id": .., "cmd": "..", ...args};
// one JSON reply a line on stdout, {"id": .., "ok": true, "result": ..} or
// {"id": .., "ok": false, "error": ".."}. Commands run concurrently, so a
// reply can overtake an earlier, slower command. Everything else, the SDK's
// own logging included, goes to stderr. Closing stdin stops the client.
//
// Set SOBAT_JSCLIENT_LOG=debug in the environment for the SDK's debug logs.

import process from "node:process";
import readline from "node:readline";
import { format } from "node:util";

// matrix-js-sdk 43 declares Node 22 for this one API; the rest runs on Node 20.
if (typeof Promise.withResolvers !== "function") {
    Promise.withResolvers = function withResolvers() {
        let resolve;
        let reject;
        const promise = new this((res, rej) => {
            resolve = res;
            reject = rej;
        });
        return { promise, resolve, reject };
    };
}

// stdout carries replies only. The SDK logs through loglevel, which binds
// console methods when its loggers are made: redirect them before importing it.
const verbose = process.env.SOBAT_JSCLIENT_LOG === "debug";
const toStderr = (...args) => process.stderr.write(format(...args) + "\n");
const quiet = () => {};
console.log = verbose ? toStderr : quiet;
console.info = verbose ? toStderr : quiet;
console.debug = verbose ? toStderr : quiet;
console.trace = verbose ? toStderr : quiet;
console.warn = toStderr;
console.error = toStderr;

await import("fake-indexeddb/auto");
const sdk = await import("matrix-js-sdk");
const {
    AllDevicesIsolationMode,
    OnlySignedDevicesIsolationMode,
    EventShieldColour,
    EventShieldReason,
} = await import("matrix-js-sdk/lib/crypto-api/index.js");

const MEGOLM = "m.megolm.v1.aes-sha2";
const DEVICE_NAME = "sobat interop (matrix-js-sdk)";
const FIRST_SYNC_TIMEOUT_MS = 30_000;
const ROOM_TIMEOUT_MS = 30_000;
// A waiter re-checks at least this often, for conditions no event announces.
const RECHECK_MS = 250;

const state = {
    client: null,
    crypto: null,
    userId: null,
    autoJoin: true,
    // Every timeline event from another user, oldest first: {event, roomId, taken}.
    received: [],
    seenEventIds: new Set(),
    joinAttempted: new Set(),
    wakeups: new Set(),
};

function log(...args) {
    toStderr(`[jsclient ${state.client?.getDeviceId() ?? "-"}]`, ...args);
}

function notify() {
    for (const wake of [...state.wakeups]) wake();
}

function sleepUntilNotified(ms) {
    return new Promise((resolve) => {
        const wake = () => {
            clearTimeout(timer);
            state.wakeups.delete(wake);
            resolve();
        };
        const timer = setTimeout(wake, ms);
        state.wakeups.add(wake);
    });
}

// Resolve with check()'s first result that is neither null nor undefined.
async function waitUntil(check, timeoutMs, describe) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const result = await check();
        if (result !== null && result !== undefined) return result;

        const remaining = deadline - Date.now();
        if (remaining <= 0) {
            throw new Error(`timeout: ${describe()} within ${timeoutMs} ms`);
        }
        await sleepUntilNotified(Math.min(remaining, RECHECK_MS));
    }
}

function requireClient() {
    if (state.client === null) throw new Error("not logged in: send login first");
    return state.client;
}

function passwordAuth(userId, password) {
    return {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password,
    };
}

// -- events ---------------------------------------------------------------------

function onTimeline(event, room, toStartOfTimeline) {
    if (toStartOfTimeline || room === undefined) return;
    if (event.getSender() === state.userId) return;

    const eventId = event.getId();
    if (eventId === undefined || state.seenEventIds.has(eventId)) return;
    state.seenEventIds.add(eventId);

    state.received.push({ event, roomId: room.roomId, taken: false });
    notify();
}

function onMyMembership(room, membership) {
    if (membership === "invite") maybeJoin(room.roomId);
    notify();
}

function maybeJoin(roomId) {
    if (!state.autoJoin || state.joinAttempted.has(roomId)) return;
    state.joinAttempted.add(roomId);

    state.client.joinRoom(roomId).then(notify, (err) => {
        // An invite can be withdrawn before we join: not a failure of the client.
        log(`could not join ${roomId}: ${err.errcode ?? err.name}`);
    });
}

function joinPendingInvites() {
    for (const room of state.client.getRooms()) {
        if (room.getMyMembership() === "invite") maybeJoin(room.roomId);
    }
}

function waitForFirstSync(client) {
    return waitUntil(
        () => (client.isInitialSyncComplete() ? true : null),
        FIRST_SYNC_TIMEOUT_MS,
        () => `first sync (state ${client.getSyncState()})`,
    );
}

// -- commands ---------------------------------------------------------------------

async function login({ homeserver, user_id, password, isolation }) {
    if (state.client !== null) throw new Error("already logged in");
    if (isolation !== "all" && isolation !== "signed_only") {
        throw new Error(`isolation must be "all" or "signed_only", not ${isolation}`);
    }

    const bare = sdk.createClient({ baseUrl: homeserver });
    const session = await bare.loginRequest({
        ...passwordAuth(user_id, password),
        initial_device_display_name: DEVICE_NAME,
    });

    const client = sdk.createClient({
        baseUrl: homeserver,
        userId: session.user_id,
        deviceId: session.device_id,
        accessToken: session.access_token,
    });
    state.client = client;
    state.userId = session.user_id;

    // fake-indexeddb is in memory: one database per process, gone at exit.
    await client.initRustCrypto({ cryptoDatabasePrefix: `sobat-${session.device_id}` });
    const crypto = client.getCrypto();
    state.crypto = crypto;
    crypto.setDeviceIsolationMode(
        isolation === "all"
            ? new AllDevicesIsolationMode(false)
            : new OnlySignedDevicesIsolationMode(),
    );

    client.on(sdk.RoomEvent.Timeline, onTimeline);
    client.on(sdk.RoomEvent.MyMembership, onMyMembership);
    client.on(sdk.MatrixEventEvent.Decrypted, notify);
    client.on(sdk.ClientEvent.Sync, notify);

    // Lazy-loaded members as Element; threads off, so that every message
    // lands in the main timeline that wait_for reads.
    await client.startClient({ lazyLoadMembers: true, initialSyncLimit: 50 });
    await waitForFirstSync(client);

    // Element sets up cross-signing at first login, so that the owner signs
    // the new device. Uploading the keys may ask for the password (UIA).
    await crypto.bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
            await makeRequest(passwordAuth(session.user_id, password));
        },
    });
    const own = await crypto.getDeviceVerificationStatus(
        session.user_id,
        session.device_id,
    );
    if (!own?.signedByOwner) throw new Error("own device is not signed by its owner");

    joinPendingInvites();
    log(`logged in, isolation ${isolation}`);
    return { device_id: session.device_id, user_id: session.user_id };
}

async function roomIsEncrypted(roomId) {
    const room = state.client.getRoom(roomId);
    if (room === null || room.getMyMembership() !== "join") return false;
    return state.crypto.isEncryptionEnabledInRoom(roomId);
}

function waitEncryptedRoom(roomId) {
    return waitUntil(
        async () => ((await roomIsEncrypted(roomId)) ? true : null),
        ROOM_TIMEOUT_MS,
        () => `joined encrypted room ${roomId}`,
    );
}

async function startDm({ user_id }) {
    const client = requireClient();

    // Element checks that the invitee can receive encrypted messages first,
    // which downloads their devices and cross-signing identity.
    const devices = await state.crypto.getUserDeviceInfo([user_id], true);
    if ((devices.get(user_id)?.size ?? 0) === 0) {
        throw new Error(`${user_id} has no device to encrypt for`);
    }

    const { room_id } = await client.createRoom({
        preset: sdk.Preset.TrustedPrivateChat,
        visibility: sdk.Visibility.Private,
        is_direct: true,
        invite: [user_id],
        initial_state: [
            { type: "m.room.encryption", state_key: "", content: { algorithm: MEGOLM } },
        ],
    });

    const direct = { ...(client.getAccountData("m.direct")?.getContent() ?? {}) };
    direct[user_id] = [...(direct[user_id] ?? []), room_id];
    await client.setAccountData("m.direct", direct);

    await waitEncryptedRoom(room_id);
    return { room_id };
}

async function send({ room_id, body }) {
    const client = requireClient();

    // The SDK sends in clear to a room it does not know as encrypted; refuse.
    await waitEncryptedRoom(room_id);
    const { event_id } = await client.sendMessage(room_id, { msgtype: "m.text", body });
    return { event_id };
}

async function react({ room_id, event_id, key }) {
    const client = requireClient();
    await waitEncryptedRoom(room_id);

    // Like Element, the SDK sends reactions in clear even in encrypted rooms.
    const answer = await client.sendEvent(room_id, sdk.EventType.Reaction, {
        "m.relates_to": { rel_type: "m.annotation", event_id, key },
    });
    return { event_id: answer.event_id };
}

function isReadableMessage(event) {
    return (
        !event.isBeingDecrypted() &&
        !event.isDecryptionFailure() &&
        event.getType() === "m.room.message"
    );
}

function takeMessage(contains, roomId) {
    for (const entry of state.received) {
        if (entry.taken || (roomId && entry.roomId !== roomId)) continue;
        if (!isReadableMessage(entry.event)) continue;

        const body = entry.event.getContent().body;
        if (typeof body === "string" && body.includes(contains)) {
            entry.taken = true;
            return entry;
        }
    }
    return null;
}

// The sender's device, found by the Curve25519 key that its Megolm session came from.
async function senderDevice(event) {
    const sender = event.getSender();
    const senderKey = event.getSenderKey();
    const devices = await state.crypto.getUserDeviceInfo([sender], true);

    for (const device of devices.get(sender)?.values() ?? []) {
        if (device.getIdentityKey() === senderKey) return device;
    }
    return null;
}

async function describeMessage({ event, roomId }) {
    const content = event.getContent();
    const described = {
        room_id: roomId,
        event_id: event.getId(),
        sender: event.getSender(),
        body: content.body,
        msgtype: content.msgtype ?? null,
        was_encrypted: event.isEncrypted(),
        decryption_failure: event.isDecryptionFailure(),
        sender_device_id: null,
        sender_device_signed_by_owner: null,
        shield_colour: null,
        shield_reason: null,
    };
    if (!event.isEncrypted()) return described;

    // What Element shows beside the message.
    const info = await state.crypto.getEncryptionInfoForEvent(event);
    if (info !== null) {
        described.shield_colour = EventShieldColour[info.shieldColour];
        described.shield_reason =
            info.shieldReason === null ? null : EventShieldReason[info.shieldReason];
    }

    const device = await senderDevice(event);
    if (device !== null) {
        const status = await state.crypto.getDeviceVerificationStatus(
            event.getSender(),
            device.deviceId,
        );
        described.sender_device_id = device.deviceId;
        described.sender_device_signed_by_owner = status?.signedByOwner ?? null;
    }
    return described;
}

function undecryptableEntries() {
    return state.received
        .filter(({ event }) => event.isDecryptionFailure())
        .map(({ event, roomId }) => ({
            event_id: event.getId(),
            room_id: roomId,
            sender: event.getSender(),
            reason: event.decryptionFailureReason,
        }));
}

async function waitFor({ contains, room_id, timeout_ms }) {
    requireClient();
    const entry = await waitUntil(
        () => takeMessage(contains, room_id),
        timeout_ms ?? 30_000,
        () => {
            const failures = undecryptableEntries().map((u) => u.reason);
            return (
                `no message from another user containing the text` +
                `${room_id ? ` in ${room_id}` : ""}` +
                ` (received ${state.received.length}, undecryptable: ` +
                `${JSON.stringify(failures)})`
            );
        },
    );
    return describeMessage(entry);
}

// A decryption failure can be temporary: a missing key may still arrive.
async function waitUndecryptable({ event_id, timeout_ms }) {
    requireClient();
    return waitUntil(
        () => undecryptableEntries().find((entry) => entry.event_id === event_id),
        timeout_ms ?? 30_000,
        () => `decryption failure of ${event_id}`,
    );
}

async function waitJoined({ room_id, timeout_ms }) {
    requireClient();
    await waitUntil(
        () => (state.client.getRoom(room_id)?.getMyMembership() === "join" ? true : null),
        timeout_ms ?? ROOM_TIMEOUT_MS,
        () => `join of ${room_id}`,
    );
    return null;
}

async function autoJoin({ enabled }) {
    requireClient();
    state.autoJoin = Boolean(enabled);
    if (state.autoJoin) joinPendingInvites();
    return { enabled: state.autoJoin };
}

async function userDevices({ user_id }) {
    requireClient();
    const devices = await state.crypto.getUserDeviceInfo([user_id], true);
    return [...(devices.get(user_id)?.keys() ?? [])].sort();
}

async function deviceStatus({ user_id, device_id }) {
    requireClient();
    await state.crypto.getUserDeviceInfo([user_id], true);
    const status = await state.crypto.getDeviceVerificationStatus(user_id, device_id);
    return {
        known: status !== null,
        signed_by_owner: status?.signedByOwner ?? false,
        cross_signing_verified: status?.crossSigningVerified ?? false,
        locally_verified: status?.localVerified ?? false,
    };
}

async function undecryptable() {
    requireClient();
    return undecryptableEntries();
}

function stopClient() {
    state.client?.stopClient();
    state.client = null;
}

const COMMANDS = {
    login,
    start_dm: startDm,
    send,
    react,
    wait_for: waitFor,
    wait_joined: waitJoined,
    auto_join: autoJoin,
    device_status: deviceStatus,
    user_devices: userDevices,
    undecryptable,
    wait_undecryptable: waitUndecryptable,
};

// -- the line protocol ------------------------------------------------------------

function reply(message, then) {
    process.stdout.write(JSON.stringify(message) + "\n", then);
}

async function handle(line) {
    let command;
    try {
        command = JSON.parse(line);
    } catch {
        reply({ id: null, ok: false, error: "not a JSON line" });
        return;
    }
    const { id, cmd, ...args } = command;

    if (cmd === "stop") {
        stopClient();
        reply({ id, ok: true, result: null }, () => process.exit(0));
        return;
    }

    const run = COMMANDS[cmd];
    if (run === undefined) {
        reply({ id, ok: false, error: `unknown command ${JSON.stringify(cmd)}` });
        return;
    }
    try {
        reply({ id, ok: true, result: await run(args) });
    } catch (err) {
        log(`${cmd} failed: ${err?.name}`);
        reply({ id, ok: false, error: `${cmd}: ${err?.message ?? String(err)}` });
    }
}

process.on("unhandledRejection", (reason) => {
    log("unhandled rejection:", reason);
});

const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on("line", (line) => {
    if (line.trim() !== "") handle(line);
});
lines.on("close", () => {
    stopClient();
    process.exit(0);
});
