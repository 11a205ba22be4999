#!/usr/bin/env node
// Telegram Bot API emulator for troly's end-to-end tests.
//
// Wraps the npm package `telegram-test-api` (pinned in package.json) and fixes what
// aiogram 3 needs from a Bot API server. node_modules is never edited: an outer express
// app answers the patched methods and hands everything else to the package's own app.
//
// Usage: node serve.js [PORT] [--exit-on-stdin-close]
//   PORT defaults to $TELEGRAM_EMULATOR_PORT, then 0 (the OS picks a free port).
//   Prints `READY <port>` on stdout once listening; exits cleanly on SIGTERM/SIGINT
//   (and, with the flag, when stdin closes, so a crashed parent leaves no orphan).
//
// Patched / added Bot API methods (everything else goes to the package unchanged, so a
// method it does not know still gets its stock 500 answer):
//   getMe                  adds is_bot (aiogram requires it); id = the token's number;
//                          username troly_test_bot for every token
//   getUpdates             honours offset (confirm semantics), limit and timeout (long poll)
//   sendMessage, send<Media> return a real Message (date in seconds, from, chat); multipart
//                          uploads (sendPhoto, sendDocument, ...) are parsed; the chat is the
//                          one users showed (a group's title); reply_to_message_id and
//                          reply_parameters fill reply_to_message (400 "message to be replied
//                          not found" unless allow_sending_without_reply); reply_markup is kept
//                          only for an inline keyboard with a button
//   editMessageText/ReplyMarkup/Caption  return the edited Message; 400 when not found or
//                          not modified; omitting reply_markup (or an empty inline keyboard)
//                          removes the inline keyboard
//   setMyCommands, getMyCommands, deleteMyCommands  one list per bot token, scope (default,
//                          all_private_chats, all_group_chats, all_chat_administrators, chat,
//                          chat_administrators, chat_member) and language_code; Telegram's
//                          checks and 400 descriptions (BOT_COMMAND_INVALID: 1-32 of a-z0-9_,
//                          description 1-256 characters, BOT_COMMANDS_TOO_MUCH past 100,
//                          invalid language code, no scope but chat in a private chat, ...);
//                          getMyCommands returns exactly that scope's list, [] if none; an empty
//                          list set is no list
//   deleteMessage, answerCallbackQuery, deleteWebhook(drop_pending_updates) return true
//   getWebhookInfo
// Chats: the type follows the id (> 0 private, -100... supergroup, other < 0 group); a chat's
// object is the one its users last sent (title of a group, name of a private chat).
//
// Client endpoints (what users do; POST JSON, answer {ok, result} or a 400 like the Bot API's):
//   /sendMessage  {botToken, from, chat, text, entities?, date?, reply_to_message_id?}
//                 a user's message (replaces the package's route): a private chat's id must be
//                 its user's; reply_to_message_id fills reply_to_message from that message's
//                 current state (400 if gone); returns the Message the bot will get
//   /sendCallback {botToken, from, message: {message_id, chat: {id}}, data, chat_instance?}
//                 a button press (replaces the package's route) on the bot message in its
//                 CURRENT state: 400 if the message is gone or has no button with that data;
//                 returns the CallbackQuery the bot will get
//   /getUpdatesHistory {token}  the package's: bot messages carry apiMessage (current state)
//   /_emulator/calls {token}    every Bot API call the bot made except getUpdates:
//                               [{method, params, time}]
//   /_emulator/counts {token}   calls per method, chats sent a message, getUpdates calls:
//                               {methods, chats, polls}
//   /_emulator/commands {token} every command list set: [{scope, language_code, commands}]
//   /_emulator/menu {token, chat_id, user_id?, chat_type?, language_code?, is_admin?}
//                 the menu that user sees in that chat, by Telegram's documented order (private
//                 chat: chat, all_private_chats, default; group: chat_member, chat_administrators
//                 if is_admin, chat, all_chat_administrators if is_admin, all_group_chats,
//                 default; each scope with the user's language_code first, then without):
//                 {scope, language_code, commands}, scope null when no list applies
'use strict';

const busboy = require('busboy');
const express = require('express');
const TelegramServer = require('telegram-test-api');

const args = process.argv.slice(2);
const portArg = args.find((a) => /^\d+$/.test(a));
const port = Number(portArg ?? process.env.TELEGRAM_EMULATOR_PORT ?? 0);
const exitOnStdinClose = args.includes('--exit-on-stdin-close');

// storeTimeout: the package drops stored messages older than this (default 60 s).
const server = new TelegramServer({ host: '127.0.0.1', port, storeTimeout: 24 * 3600 });
server.config.port = port; // normalizeConfig turns 0 into 9000; we want 0 = ephemeral.
server.setMaxListeners(0); // every pending long poll listens for new user updates.

const JSON_FIELDS = new Set([
  'reply_markup', 'entities', 'caption_entities', 'commands', 'scope', 'menu_button',
  'link_preview_options', 'reply_parameters', 'allowed_updates', 'media', 'rights',
]);
const USER_UPDATE_EVENTS = ['AddedUserMessage', 'AddedUserCommand', 'AddedUserCallbackQuery'];
const MEDIA_METHODS = {
  sendPhoto: 'photo', sendDocument: 'document', sendAudio: 'audio', sendVideo: 'video',
  sendVoice: 'voice', sendAnimation: 'animation', sendSticker: 'sticker', sendVideoNote: 'video_note',
};
const TRUE_METHODS = ['answerCallbackQuery'];

const calls = new Map(); // token -> [{method, params, time}]
const polls = new Map(); // token -> how many getUpdates calls (not kept in calls)
let fileCounter = 0;
let stopping = false;

const nowSec = () => Math.floor(Date.now() / 1000);
const isTrue = (v) => v === true || v === 'true' || v === '1' || v === 1;

function parseParams(body) {
  const params = { ...body };
  for (const key of Object.keys(params)) {
    if (JSON_FIELDS.has(key) && typeof params[key] === 'string') {
      try { params[key] = JSON.parse(params[key]); } catch (_e) { /* keep the raw string */ }
    }
  }
  return params;
}

function botUser(token) {
  const id = Number(String(token).split(':')[0]) || 666;
  return {
    id, is_bot: true, first_name: 'Troly Test', username: 'troly_test_bot',
    can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false,
  };
}

// Chats as users last showed them (their messages carry the Chat object): the bot's messages
// to a chat carry the same object, so a group keeps one title and a private chat its user's
// name. A chat nobody wrote in yet gets a made-up one; its type follows from the id's sign.
const chats = new Map(); // chat id -> Chat

const chatTypeOf = (chatId) => {
  if (chatId > 0) return 'private';
  return String(chatId).startsWith('-100') ? 'supergroup' : 'group';
};

function chatFor(chatId) {
  const id = Number(chatId);
  if (chats.has(id)) return chats.get(id);
  const type = chatTypeOf(id);
  if (type === 'private') return { id, type, first_name: 'Test User' };
  return { id, type, title: `Test ${type} ${id}` };
}

function rememberChat(chat) {
  if (chat && Number.isInteger(Number(chat.id))) chats.set(Number(chat.id), { ...chat, id: Number(chat.id) });
}

// Numeric chat ids only (no @channel usernames).
const badChatId = (p) => !p.chat_id || !Number.isInteger(Number(p.chat_id));

function tgError(res, code, description) {
  res.status(code).json({ ok: false, error_code: code, description });
}

function ok(res, result) {
  res.json({ ok: true, result });
}

// multipart/form-data (file uploads): fields -> req.body, files -> req.files (metadata only).
function multipart(req, res, next) {
  if (!req.is('multipart/form-data')) return next();
  const fields = {};
  const files = {};
  let open = 1; // the form itself, plus one per file stream still being read
  const done = () => {
    open -= 1;
    if (open > 0) return;
    req.body = fields;
    req.files = files;
    req._body = true; // tell the package's body parsers the body is already read
    next();
  };
  const bb = busboy({ headers: req.headers });
  bb.on('field', (name, value) => { fields[name] = value; });
  bb.on('file', (name, stream, info) => {
    open += 1;
    let size = 0;
    stream.on('data', (chunk) => { size += chunk.length; });
    stream.on('end', () => {
      files[name] = { filename: info.filename, mime_type: info.mimeType, size };
      done();
    });
  });
  bb.on('error', next);
  bb.on('close', done);
  req.pipe(bb);
}

function fileObject(kind, params, files) {
  fileCounter += 1;
  const ref = params[kind];
  // aiogram uploads as `photo=attach://<part>` plus a file part named <part>.
  const attached = typeof ref === 'string' && ref.startsWith('attach://');
  const upload = files[kind] || (attached ? files[ref.slice('attach://'.length)] : undefined);
  const file = {
    file_id: upload || attached || typeof ref !== 'string' ? `emu-${kind}-${fileCounter}` : ref,
    file_unique_id: `emu-u${fileCounter}`,
    file_size: upload ? upload.size : 0,
  };
  if (kind === 'photo') return [{ ...file, width: 1, height: 1 }];
  const meta = upload ? { file_name: upload.filename, mime_type: upload.mime_type } : {};
  if (kind === 'sticker') return { ...file, width: 1, height: 1, type: 'regular', is_animated: false, is_video: false };
  if (kind === 'video' || kind === 'animation') return { ...file, ...meta, width: 1, height: 1, duration: 0 };
  if (kind === 'video_note') return { ...file, length: 1, duration: 0 };
  if (kind === 'audio' || kind === 'voice') return { ...file, ...meta, duration: 0 };
  return { ...file, ...meta }; // document
}

// Stores a bot message the package's way (its client API keeps working) and attaches the
// Bot API view of it as entry.apiMessage, which the Python helper reads.
function storeBotMessage(token, params, extra) {
  server.addBotMessage({ ...params }, token);
  const entry = server.storage.botMessages[server.storage.botMessages.length - 1];
  const chatId = Number(params.chat_id);
  const { id, is_bot: isBot, first_name: firstName, username } = botUser(token); // no getMe-only fields
  const from = { id, is_bot: isBot, first_name: firstName, username };
  const msg = { message_id: entry.messageId, from, chat: chatFor(chatId), date: nowSec() };
  for (const key of ['text', 'entities', 'caption', 'caption_entities', 'parse_mode']) {
    if (params[key] !== undefined) msg[key] = params[key];
  }
  if (hasInlineKeyboard(params.reply_markup)) msg.reply_markup = params.reply_markup;
  Object.assign(msg, extra);
  entry.apiMessage = msg;
  return msg;
}

// Telegram shows only an inline keyboard in Message.reply_markup, and none when it has no button.
const hasInlineKeyboard = (markup) => Boolean(markup && Array.isArray(markup.inline_keyboard)
  && markup.inline_keyboard.some((row) => Array.isArray(row) && row.length > 0));

function findBotEntry(token, chatId, messageId) {
  return server.storage.botMessages.find((e) => e.botToken === token && e.apiMessage
    && e.apiMessage.chat.id === Number(chatId) && e.messageId === Number(messageId));
}

// Any message of the chat that still exists (the bot's or a user's), in its current state.
function findMessage(token, chatId, messageId) {
  const own = findBotEntry(token, chatId, messageId);
  if (own) return own.apiMessage;
  const user = server.storage.userMessages.find((u) => u.botToken === token && u.message
    && u.message.chat && Number(u.message.chat.id) === Number(chatId) && u.messageId === Number(messageId));
  return user ? TelegramServer.formatUpdate(user).message : undefined;
}

// A replied-to message as Telegram nests it: without its own reply_to_message.
function asRepliedTo(message) {
  const { reply_to_message: _nested, ...rest } = message;
  return rest;
}

// The message a bot send replies to (reply_to_message_id or reply_parameters), or an error
// text when it does not exist and the bot did not allow sending without the reply.
function replyTarget(token, p) {
  const rp = p.reply_parameters && typeof p.reply_parameters === 'object' ? p.reply_parameters : {};
  const messageId = rp.message_id ?? p.reply_to_message_id;
  if (messageId === undefined || messageId === '') return {};
  const found = findMessage(token, rp.chat_id ?? p.chat_id, messageId);
  if (found) return { extra: { reply_to_message: asRepliedTo(found) } };
  if (isTrue(rp.allow_sending_without_reply ?? p.allow_sending_without_reply)) return {};
  return { error: 'Bad Request: message to be replied not found' };
}

function takeUpdates(token, offset, limit) {
  const mine = server.storage.userMessages.filter((u) => u.botToken === token);
  if (offset) mine.filter((u) => u.updateId < offset).forEach((u) => { u.isRead = true; });
  return mine
    .filter((u) => !u.isRead && (!offset || u.updateId >= offset))
    .slice(0, limit)
    .map((u) => TelegramServer.formatUpdate(u));
}

// The package's formatUpdate leaks `botToken` into messages and drops chat_instance, which
// aiogram's CallbackQuery requires.
TelegramServer.formatUpdate = (update) => {
  if ('callbackQuery' in update) {
    const { from, message, data, chat_instance: chatInstance } = update.callbackQuery;
    const chat = (message && message.chat) || from;
    return {
      update_id: update.updateId,
      callback_query: {
        id: String(update.callbackId), from, message, chat_instance: chatInstance || String(chat.id), data,
      },
    };
  }
  const { botToken: _token, ...message } = update.message;
  return { update_id: update.updateId, message: { ...message, message_id: update.messageId } };
};

// ---------------------------------------------------------------- command menus
// Telegram keeps one command list per bot, scope and language_code. The checks and their
// descriptions follow the Bot API server (scope and commands parsing, chat lookup), TDLib
// (scope allowed for the chat type, language code, command and description trimmed and
// measured, a leading '/' dropped) and Telegram's own answers (BOT_COMMAND_INVALID,
// BOT_COMMANDS_TOO_MUCH). An empty list is no list: like deleteMyCommands, it lets the next
// scope of the resolution order show through.

const menus = new Map(); // token -> Map(key -> {scope, language_code, commands})
const CHATLESS_SCOPES = ['default', 'all_private_chats', 'all_group_chats', 'all_chat_administrators'];
const CHAT_SCOPES = ['chat', 'chat_administrators', 'chat_member'];
const MAX_COMMANDS = 100;

class BadRequest extends Error {}

const codePoints = (text) => [...text].length;

// A JSON parameter as the Bot API server reads it, from the request as sent (req.raw): a
// string is JSON text, anything else came decoded in a JSON body.
function jsonParam(value) {
  if (typeof value !== 'string') return { value };
  try {
    return { value: JSON.parse(value) };
  } catch (_e) {
    return { invalid: true };
  }
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

function requiredString(object, name) {
  const value = object[name];
  if (value === undefined) throw new Error(`Can't find field "${name}"`);
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  throw new Error(`Field "${name}" must be of type String`);
}

function requiredLong(object, name) {
  const value = object[name];
  if (value === undefined) throw new Error(`Can't find field "${name}"`);
  if (typeof value !== 'number' && typeof value !== 'string') throw new Error(`Field "${name}" must be of type Number`);
  if (!/^-?\d+$/.test(String(value).trim())) throw new Error(`Field "${name}" must be a valid Number`);
  return Number(value);
}

// Numeric chat ids only: a @username names no chat here.
function lookUpChat(chatId) {
  const text = String(chatId).trim();
  if (!/^-?\d+$/.test(text) || Number(text) === 0) throw new BadRequest('Bad Request: chat not found');
  return chatFor(Number(text));
}

// -> {type} or {type, chat_id} or {type, chat_id, user_id}, ids as numbers.
function readScope(raw) {
  if (raw === undefined || raw === '') return { type: 'default' };
  const parsed = jsonParam(raw);
  if (parsed.invalid) throw new BadRequest("Bad Request: can't parse BotCommandScope JSON object");
  let scope;
  let chatId;
  try {
    const value = parsed.value;
    if (!isObject(value)) throw new Error('BotCommandScope must be an Object');
    const type = requiredString(value, 'type');
    if (CHATLESS_SCOPES.includes(type)) return { type };
    if (!CHAT_SCOPES.includes(type)) throw new Error('Unsupported type specified');
    chatId = requiredString(value, 'chat_id');
    if (chatId === '') throw new Error('Empty chat_id specified');
    scope = { type };
    if (type === 'chat_member') {
      const userId = requiredLong(value, 'user_id');
      if (userId <= 0) throw new Error('Invalid user_id specified');
      scope.user_id = userId;
    }
  } catch (err) {
    throw new BadRequest(`Bad Request: can't parse BotCommandScope: ${err.message}`);
  }
  const chat = lookUpChat(chatId);
  if (chat.type === 'private' && scope.type !== 'chat') {
    throw new BadRequest("Bad Request: can't use specified scope in private chats");
  }
  if (chat.type === 'channel') throw new BadRequest("Bad Request: can't change commands in channel chats");
  return { type: scope.type, chat_id: chat.id, ...(scope.user_id ? { user_id: scope.user_id } : {}) };
}

function readLanguage(raw) {
  const code = raw === undefined ? '' : String(raw);
  if (code === '' || /^[a-z]{2}$/.test(code)) return code;
  throw new BadRequest('Bad Request: invalid language code specified');
}

// The parsing half of setMyCommands (before the scope is read, as the Bot API server does).
function parseCommands(raw) {
  if (raw === undefined || raw === '') return [];
  const parsed = jsonParam(raw);
  if (parsed.invalid) throw new BadRequest("Bad Request: can't parse commands JSON object");
  if (!Array.isArray(parsed.value)) throw new BadRequest('Bad Request: expected an Array of BotCommand');
  return parsed.value.map((item) => {
    try {
      if (!isObject(item)) throw new Error('expected an Object');
      return { command: requiredString(item, 'command'), description: requiredString(item, 'description') };
    } catch (err) {
      throw new BadRequest(`Bad Request: can't parse BotCommand: ${err.message}`);
    }
  });
}

// The checking half: TDLib's, then Telegram's.
function checkCommands(commands) {
  const checked = commands.map(({ command, description }) => {
    let name = command.trim();
    if (name.startsWith('/')) name = name.slice(1);
    if (name === '') throw new BadRequest('Bad Request: command must be non-empty');
    if (codePoints(name) > 32) throw new BadRequest('Bad Request: command length must not exceed 32');
    const text = description.trim();
    if (text === '') throw new BadRequest('Bad Request: command description must be non-empty');
    if (codePoints(text) > 256) {
      throw new BadRequest('Bad Request: command description length must not exceed 256');
    }
    return { command: name, description: text };
  });
  if (checked.length > MAX_COMMANDS) throw new BadRequest('Bad Request: BOT_COMMANDS_TOO_MUCH');
  if (checked.some(({ command }) => !/^[a-z0-9_]{1,32}$/.test(command))) {
    throw new BadRequest('Bad Request: BOT_COMMAND_INVALID');
  }
  return checked;
}

function scopeKey(scope) {
  return [scope.type, scope.chat_id ?? '', scope.user_id ?? ''].join(':');
}

const menuKey = (scope, languageCode) => `${scopeKey(scope)}|${languageCode}`;

function menusOf(token) {
  if (!menus.has(token)) menus.set(token, new Map());
  return menus.get(token);
}

// Which list a user sees in a chat: Telegram's documented order, each scope first with the
// user's language_code, then without one; the first list that is set wins.
function resolveMenu(token, { chat, userId, languageCode, isAdmin }) {
  const candidates = [];
  if (chat.type === 'private') {
    candidates.push({ type: 'chat', chat_id: chat.id }, { type: 'all_private_chats' });
  } else {
    candidates.push({ type: 'chat_member', chat_id: chat.id, user_id: userId });
    if (isAdmin) candidates.push({ type: 'chat_administrators', chat_id: chat.id });
    candidates.push({ type: 'chat', chat_id: chat.id });
    if (isAdmin) candidates.push({ type: 'all_chat_administrators' });
    candidates.push({ type: 'all_group_chats' });
  }
  candidates.push({ type: 'default' });
  const stored = menusOf(token);
  for (const scope of candidates) {
    for (const lang of languageCode ? [languageCode, ''] : ['']) {
      const menu = stored.get(menuKey(scope, lang));
      if (menu) return menu;
    }
  }
  return { scope: null, language_code: '', commands: [] };
}

const badRequestOr = (handler) => (req, res) => {
  try {
    return handler(req, res);
  } catch (err) {
    if (err instanceof BadRequest) return tgError(res, 400, err.message);
    throw err;
  }
};

const app = express();
app.use(express.json());
app.use(express.urlencoded({ extended: true }));
app.use(multipart);

app.post('/_emulator/calls', (req, res) => ok(res, calls.get(req.body.token) || []));

// How many calls of each method the bot made, how many chats it sent a message to and how
// many times it called getUpdates (cheap to poll while it works): {methods, chats, polls}.
app.post('/_emulator/counts', (req, res) => {
  const methods = {};
  const chats = new Set();
  for (const call of calls.get(req.body.token) || []) {
    methods[call.method] = (methods[call.method] || 0) + 1;
    if (call.method === 'sendMessage') chats.add(String(call.params.chat_id));
  }
  ok(res, { methods, chats: chats.size, polls: polls.get(req.body.token) || 0 });
});

// Every command list the bot set: [{scope, language_code, commands}], oldest first.
app.post('/_emulator/commands', (req, res) => ok(res, [...menusOf(req.body.token).values()]));

// The command menu a user sees in a chat: {scope, language_code, commands}, scope null when
// no list applies. Body: token, chat_id, user_id (a private chat's own id by default),
// chat_type (the known chat's type by default), language_code (the user's), is_admin.
app.post('/_emulator/menu', badRequestOr((req, res) => {
  const b = req.body || {};
  if (!b.token) throw new BadRequest('Bad Request: token is required');
  const known = lookUpChat(b.chat_id);
  const chat = { ...known, type: b.chat_type ?? known.type };
  if (!['private', 'group', 'supergroup'].includes(chat.type)) {
    throw new BadRequest(`Bad Request: no command menu in a chat of type ${JSON.stringify(chat.type)}`);
  }
  const userId = b.user_id === undefined || b.user_id === null ? chat.id : Number(b.user_id);
  if (!Number.isInteger(userId) || userId <= 0) throw new BadRequest('Bad Request: user_id must be a positive integer');
  if (chat.type === 'private' && userId !== chat.id) {
    throw new BadRequest('Bad Request: a private chat with the bot belongs to the user of the same id');
  }
  const languageCode = readLanguage(b.language_code ?? '');
  return ok(res, resolveMenu(b.token, { chat, userId, languageCode, isAdmin: isTrue(b.is_admin) }));
}));

// Client API (what users do), replacing the package's routes of the same names.

const hasButton = (message, data) => Boolean(message && hasInlineKeyboard(message.reply_markup)
  && message.reply_markup.inline_keyboard.some((row) => row.some((b) => b.callback_data === data)));

function clientError(res, err) {
  if (err instanceof BadRequest) return tgError(res, 400, err.message);
  return tgError(res, 500, `Internal Server Error: ${err.message}`);
}

// A user's message. Body: botToken, from (a User), chat (a Chat: a private chat's id is its
// user's, a group's is negative), text, entities, ..., date (default now) and optionally
// reply_to_message_id (a message of that chat: reply_to_message is filled in from its current
// state). Returns the Message as getUpdates will give it to the bot.
app.post('/sendMessage', async (req, res) => {
  try {
    const { reply_to_message_id: replyTo, ...body } = req.body || {};
    const token = body.botToken;
    if (!token) throw new BadRequest('Bad Request: botToken is required');
    if (!isObject(body.from) || !Number.isInteger(Number(body.from.id)) || Number(body.from.id) <= 0) {
      throw new BadRequest('Bad Request: from must be a User with a positive id');
    }
    if (!isObject(body.chat) || !Number.isInteger(Number(body.chat.id)) || Number(body.chat.id) === 0) {
      throw new BadRequest('Bad Request: chat must be a Chat with a non-zero id');
    }
    const chatId = Number(body.chat.id);
    if (chatId > 0 && chatId !== Number(body.from.id)) {
      throw new BadRequest("Bad Request: a private chat's id is its user's id");
    }
    const message = { ...body, chat: { ...body.chat, id: chatId }, date: body.date ?? nowSec() };
    if (replyTo !== undefined && replyTo !== null) {
      const target = findMessage(token, chatId, replyTo);
      if (!target) throw new BadRequest('Bad Request: message to be replied not found');
      message.reply_to_message = asRepliedTo(target);
    }
    rememberChat(message.chat);
    const messageId = server.messageId; // addUserMessage takes it before its first await
    await server.addUserMessage(message);
    const { botToken: _token, ...visible } = message;
    return ok(res, { message_id: messageId, ...visible });
  } catch (err) {
    return clientError(res, err);
  }
});

// A user pressing an inline button. Body: botToken, from, message (at least message_id and
// chat.id of a bot message), data, chat_instance. The message is taken in its current state:
// refused (400) when it no longer exists or no longer has a button with that callback_data.
// Returns the CallbackQuery as getUpdates will give it to the bot.
app.post('/sendCallback', async (req, res) => {
  try {
    const body = req.body || {};
    const token = body.botToken;
    if (!token) throw new BadRequest('Bad Request: botToken is required');
    if (!isObject(body.from) || !Number.isInteger(Number(body.from.id))) {
      throw new BadRequest('Bad Request: from must be a User');
    }
    const ref = isObject(body.message) ? body.message : {};
    const chatId = ref.chat ? ref.chat.id : body.chat_id;
    const entry = findBotEntry(token, chatId, ref.message_id ?? body.message_id);
    if (!entry) throw new BadRequest('Bad Request: message not found');
    if (!hasButton(entry.apiMessage, body.data)) {
      throw new BadRequest('Bad Request: the message has no inline button with this callback_data');
    }
    const callback = {
      botToken: token,
      from: body.from,
      message: entry.apiMessage,
      data: body.data,
      chat_instance: body.chat_instance || String(entry.apiMessage.chat.id),
    };
    const id = server.callbackId;
    await server.addUserCallback(callback);
    const { botToken: _token, ...visible } = callback;
    return ok(res, { id: String(id), ...visible });
  } catch (err) {
    return clientError(res, err);
  }
});

app.all('/bot:token/:method', (req, res, next) => {
  if (req.method !== 'GET' && req.method !== 'POST') return next();
  req.raw = { ...req.query, ...req.body }; // as sent: what parseParams decoded, undecoded
  req.tg = { ...parseParams(req.raw), ...(req.files || {}) };
  const { token, method } = req.params;
  if (method === 'getUpdates') {
    polls.set(token, (polls.get(token) || 0) + 1);
  } else {
    if (!calls.has(token)) calls.set(token, []);
    calls.get(token).push({ method, params: req.tg, time: Date.now() });
  }
  return next();
});

const bot = express.Router({ mergeParams: true });

bot.all('/getMe', (req, res) => ok(res, botUser(req.params.token)));

bot.all('/getUpdates', (req, res) => {
  const { token } = req.params;
  const offset = Number(req.tg.offset) || 0;
  const limit = Math.min(Math.max(Number(req.tg.limit) || 100, 1), 100);
  const deadline = Date.now() + Math.min(Math.max(Number(req.tg.timeout) || 0, 0), 50) * 1000;
  const poll = () => {
    const updates = takeUpdates(token, offset, limit);
    if (updates.length || stopping || Date.now() >= deadline) return ok(res, updates);
    const wake = () => {
      clearTimeout(timer);
      USER_UPDATE_EVENTS.forEach((e) => server.off(e, wake));
      server.off('Stopping', wake);
      res.off('close', abort);
      setImmediate(poll);
    };
    const abort = () => { // client went away (e.g. aiogram's polling task was cancelled)
      clearTimeout(timer);
      USER_UPDATE_EVENTS.forEach((e) => server.off(e, wake));
      server.off('Stopping', wake);
    };
    const timer = setTimeout(wake, Math.max(deadline - Date.now(), 0));
    USER_UPDATE_EVENTS.forEach((e) => server.on(e, wake));
    server.on('Stopping', wake);
    res.on('close', abort);
    return undefined;
  };
  poll();
});

bot.all('/sendMessage', (req, res) => {
  const p = req.tg;
  if (badChatId(p)) return tgError(res, 400, 'Bad Request: chat not found');
  if (!p.text) return tgError(res, 400, 'Bad Request: message text is empty');
  const reply = replyTarget(req.params.token, p);
  if (reply.error) return tgError(res, 400, reply.error);
  return ok(res, storeBotMessage(req.params.token, p, { ...reply.extra }));
});

Object.entries(MEDIA_METHODS).forEach(([method, kind]) => {
  bot.all(`/${method}`, (req, res) => {
    const p = req.tg;
    if (badChatId(p)) return tgError(res, 400, 'Bad Request: chat not found');
    if (!p[kind]) return tgError(res, 400, `Bad Request: there is no ${kind} in the request`);
    const reply = replyTarget(req.params.token, p);
    if (reply.error) return tgError(res, 400, reply.error);
    const { [kind]: _file, ...rest } = p;
    const extra = { ...reply.extra, [kind]: fileObject(kind, p, req.files || {}) };
    return ok(res, storeBotMessage(req.params.token, rest, extra));
  });
});

bot.all('/setMyCommands', badRequestOr((req, res) => {
  const p = req.tg;
  const commands = parseCommands(req.raw.commands);
  const scope = readScope(req.raw.scope);
  const languageCode = readLanguage(p.language_code);
  const checked = checkCommands(commands);
  const stored = menusOf(req.params.token);
  const key = menuKey(scope, languageCode);
  stored.delete(key); // a new list goes last, as /_emulator/commands lists them
  if (checked.length) stored.set(key, { scope, language_code: languageCode, commands: checked });
  return ok(res, true);
}));

bot.all('/getMyCommands', badRequestOr((req, res) => {
  const scope = readScope(req.raw.scope);
  const menu = menusOf(req.params.token).get(menuKey(scope, readLanguage(req.tg.language_code)));
  return ok(res, menu ? menu.commands : []);
}));

bot.all('/deleteMyCommands', badRequestOr((req, res) => {
  const scope = readScope(req.raw.scope);
  menusOf(req.params.token).delete(menuKey(scope, readLanguage(req.tg.language_code)));
  return ok(res, true);
}));

function editHandler(apply) {
  return (req, res) => {
    const p = req.tg;
    if (p.inline_message_id) return ok(res, true);
    const entry = findBotEntry(req.params.token, p.chat_id, p.message_id);
    if (!entry) return tgError(res, 400, 'Bad Request: message to edit not found');
    const before = JSON.stringify(entry.apiMessage);
    const msg = { ...entry.apiMessage };
    apply(msg, p);
    if (hasInlineKeyboard(p.reply_markup)) msg.reply_markup = p.reply_markup;
    else delete msg.reply_markup;
    if (JSON.stringify(msg) === before) {
      return tgError(res, 400, 'Bad Request: message is not modified: specified new message content'
        + ' and reply markup are exactly the same as a current content and reply markup of the message');
    }
    msg.edit_date = nowSec();
    entry.apiMessage = msg;
    entry.message = { ...entry.message, ...p };
    server.emit('EditedMessageText');
    return ok(res, msg);
  };
}

bot.all('/editMessageText', editHandler((msg, p) => {
  msg.text = p.text;
  if (p.entities) msg.entities = p.entities; else delete msg.entities;
  if (p.parse_mode) msg.parse_mode = p.parse_mode; else delete msg.parse_mode;
}));
bot.all('/editMessageCaption', editHandler((msg, p) => {
  if (p.caption) msg.caption = p.caption; else delete msg.caption;
}));
bot.all('/editMessageReplyMarkup', editHandler(() => {}));

bot.all('/deleteMessage', (req, res) => {
  const chatId = Number(req.tg.chat_id);
  const messageId = Number(req.tg.message_id);
  const { storage } = server;
  const before = storage.botMessages.length + storage.userMessages.length;
  storage.botMessages = storage.botMessages.filter((e) => !(e.botToken === req.params.token
    && e.apiMessage && e.apiMessage.chat.id === chatId && e.messageId === messageId));
  storage.userMessages = storage.userMessages.filter((u) => !(u.botToken === req.params.token
    && u.message && u.message.chat && u.message.chat.id === chatId && u.messageId === messageId));
  if (storage.botMessages.length + storage.userMessages.length === before) {
    return tgError(res, 400, 'Bad Request: message to delete not found');
  }
  return ok(res, true);
});

bot.all('/deleteWebhook', (req, res) => {
  const { token } = req.params;
  server.deleteWebhook(token);
  if (isTrue(req.tg.drop_pending_updates)) {
    server.storage.userMessages.filter((u) => u.botToken === token).forEach((u) => { u.isRead = true; });
  }
  res.json({ ok: true, result: true, description: 'Webhook was deleted' });
});

bot.all('/getWebhookInfo', (req, res) => {
  const { token } = req.params;
  const hook = server.webhooks[token];
  const pending = server.storage.userMessages.filter((u) => u.botToken === token && !u.isRead).length;
  ok(res, { url: hook ? hook.url : '', has_custom_certificate: false, pending_update_count: pending });
});

TRUE_METHODS.forEach((m) => bot.all(`/${m}`, (req, res) => ok(res, true)));

app.use('/bot:token', bot);

app.use(server.webServer); // the package's own app: client API (/sendMessage, ...), setWebhook
server.webServer = app; // start() serves whatever webServer is

async function shutdown() {
  if (stopping) return;
  stopping = true;
  server.emit('Stopping'); // answer pending long polls now so connections can close
  setTimeout(() => process.exit(0), 3000).unref();
  try {
    await server.stop();
  } finally {
    process.exit(0);
  }
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (exitOnStdinClose) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

server.start().then(
  () => {
    // Keep idle connections longer than the Python clients do (aiohttp: 15 s): with Node's
    // 5 s, a client could send on a connection the server was closing (Server disconnected).
    server.server.keepAliveTimeout = 60_000;
    server.server.headersTimeout = 61_000;
    process.stdout.write(`READY ${server.server.address().port}\n`);
  },
  (err) => {
    process.stderr.write(`emulator: cannot listen on 127.0.0.1:${port}: ${err.message}\n`);
    process.exit(1);
  },
);
