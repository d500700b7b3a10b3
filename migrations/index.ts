import type { Migration, MigrationProvider } from 'kysely'
import * as initial from './2026-11-27-0001-initial.js'
import * as sessions from './2026-11-27-0002-sessions.js'
import * as blocks from './2026-11-27-0003-blocks.js'
import * as events from './2026-11-27-0004-events.js'
import * as admin from './2026-11-27-0005-admin.js'
import * as devices from './2026-11-30-0006-devices.js'
import * as prekeys from './2026-11-30-0007-prekeys.js'
import * as envelopes from './2026-11-30-0008-envelopes.js'
import * as partialEventIndexes from './2026-11-30-0009-partial-event-indexes.js'
import * as messagesUserHi from './2026-12-02-0010-messages-user-hi.js'

// Listed by hand rather than read from the folder, so the same list works from the
// TypeScript sources (tests) and from the compiled dist/ (the image). Names sort in the
// order they must run; a migration, once released, is never edited.
const migrations: Record<string, Migration> = {
  '2026-11-27-0001-initial': initial,
  '2026-11-27-0002-sessions': sessions,
  '2026-11-27-0003-blocks': blocks,
  '2026-11-27-0004-events': events,
  '2026-11-27-0005-admin': admin,
  '2026-11-30-0006-devices': devices,
  '2026-11-30-0007-prekeys': prekeys,
  '2026-11-30-0008-envelopes': envelopes,
  '2026-11-30-0009-partial-event-indexes': partialEventIndexes,
  '2026-12-02-0010-messages-user-hi': messagesUserHi
}

export const migrationProvider: MigrationProvider = {
  async getMigrations () { return migrations }
}
