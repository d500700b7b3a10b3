import { PostgresAdapter, sql, type Kysely } from 'kysely'

// Devices. An account has up to MAX_DEVICES of them, numbered 1 to 127 as Signal numbers
// them (device_id); device 1 comes with the account, added by a trigger whatever inserts the
// user (the API, the import, the CLI). Each row also has a surrogate key (id) that is never
// reused: registering a device again replaces its row, so that everything keyed by the old
// id (its tokens, keys and event stream) is gone with it, and an old cursor or token cannot
// name the new one.
//
// Event streams move from users to devices: one stream per device, numbered by the device's
// counter (event_seq, bumped in the event's own transaction, as users.event_seq was). Each
// existing user's device 1 takes the user's id as its key and the user's counters, so that
// the cursors (`<key>-<seq>`) and tokens clients hold stay valid.

export async function up (db: Kysely<any>): Promise<void> {
  const pg = db.getExecutor().adapter instanceof PostgresAdapter
  const idType = pg ? 'bigint' : 'integer'

  await db.schema.createTable('devices')
    .addColumn('id', idType, col => pg ? col.primaryKey().generatedByDefaultAsIdentity() : col.primaryKey().autoIncrement())
    .addColumn('user_id', idType, col => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('device_id', 'integer', col => col.notNull().check(sql`device_id between 1 and 127`))
    .addColumn('registration_id', 'integer', col => col.check(sql`registration_id between 1 and 16380`))
    .addColumn('name', 'text')
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addColumn('last_seen_at', 'bigint', col => col.notNull())
    .addColumn('event_seq', 'bigint', col => col.notNull().defaultTo(0))
    .addColumn('event_floor', 'bigint', col => col.notNull().defaultTo(0))
    .addUniqueConstraint('devices_user_device', ['user_id', 'device_id'])
    .execute()
  await sql`insert into devices (id, user_id, device_id, created_at, last_seen_at, event_seq, event_floor)
    select id, id, 1, created_at, created_at - created_at % 86400000, event_seq, event_floor from users`.execute(db)
  if (pg) await sql`select setval(pg_get_serial_sequence('devices', 'id'), coalesce((select max(id) from devices), 0) + 1, false)`.execute(db)

  // the events table again, its rows now owned by a device (device 1's key is the user's id)
  await db.schema.dropIndex('events_created').execute()
  await db.schema.dropIndex('events_message').execute()
  await db.schema.alterTable('events').renameTo('user_events').execute()
  await db.schema.createTable('events')
    .addColumn('device_id', idType, col => col.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('seq', 'bigint', col => col.notNull())
    .addColumn('type', 'text', col => col.notNull())
    .addColumn('payload', 'text', col => col.notNull())
    .addColumn('message_id', idType)
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addPrimaryKeyConstraint('events_device_seq', ['device_id', 'seq'])
    .execute()
  await sql`insert into events (device_id, seq, type, payload, message_id, created_at)
    select user_id, seq, type, payload, message_id, created_at from user_events`.execute(db)
  await db.schema.dropTable('user_events').execute()
  await db.schema.createIndex('events_created').on('events').column('created_at').execute()
  await db.schema.createIndex('events_message').on('events').column('message_id').execute()
  await db.schema.alterTable('users').dropColumn('event_seq').execute()
  await db.schema.alterTable('users').dropColumn('event_floor').execute()

  if (pg) {
    await sql`create function cc_device_one() returns trigger language plpgsql as $$
      begin
        insert into devices (user_id, device_id, created_at, last_seen_at) values (new.id, 1, new.created_at, new.created_at - new.created_at % 86400000);
        return new;
      end $$`.execute(db)
    await sql`create trigger users_device_one after insert on users for each row execute function cc_device_one()`.execute(db)
  } else {
    await sql`create trigger users_device_one after insert on users begin
      insert into devices (user_id, device_id, created_at, last_seen_at) values (new.id, 1, new.created_at, new.created_at - new.created_at % 86400000);
    end`.execute(db)
  }
}

export async function down (db: Kysely<any>): Promise<void> {
  const pg = db.getExecutor().adapter instanceof PostgresAdapter
  const idType = pg ? 'bigint' : 'integer'
  await db.schema.alterTable('users').addColumn('event_seq', 'bigint', col => col.notNull().defaultTo(0)).execute()
  await db.schema.alterTable('users').addColumn('event_floor', 'bigint', col => col.notNull().defaultTo(0)).execute()
  await sql`update users set event_seq = coalesce((select event_seq from devices where devices.user_id = users.id and device_id = 1), 0),
    event_floor = coalesce((select event_floor from devices where devices.user_id = users.id and device_id = 1), 0)`.execute(db)
  await db.schema.dropIndex('events_created').execute()
  await db.schema.dropIndex('events_message').execute()
  await db.schema.alterTable('events').renameTo('device_events').execute()
  await db.schema.createTable('events')
    .addColumn('user_id', idType, col => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('seq', 'bigint', col => col.notNull())
    .addColumn('type', 'text', col => col.notNull())
    .addColumn('payload', 'text', col => col.notNull())
    .addColumn('message_id', idType)
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addPrimaryKeyConstraint('events_pk', ['user_id', 'seq'])
    .execute()
  // device 1's stream becomes the user's again; other devices' events go
  await sql`insert into events (user_id, seq, type, payload, message_id, created_at)
    select devices.user_id, e.seq, e.type, e.payload, e.message_id, e.created_at
    from device_events e join devices on devices.id = e.device_id where devices.device_id = 1`.execute(db)
  await db.schema.dropTable('device_events').execute()
  await db.schema.createIndex('events_created').on('events').column('created_at').execute()
  await db.schema.createIndex('events_message').on('events').column('message_id').execute()
  if (pg) {
    await sql`drop trigger users_device_one on users`.execute(db)
    await sql`drop function cc_device_one()`.execute(db)
  } else {
    await sql`drop trigger users_device_one`.execute(db)
  }
  await db.schema.dropTable('devices').execute()
}
