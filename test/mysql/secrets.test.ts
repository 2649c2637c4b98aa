import { inspect as utilInspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createMysql } from '../../adapters/mysql/index.js';
import { resolveMysqlOptions } from '../../adapters/mysql/options.js';
import { inspect } from '../../src/index.js';
import { rejectionOf, useCleanCustodian } from '../helpers.js';
import { closedPort } from '../integration/servers.js';

useCleanCustodian();

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('custodian/mysql: a password never shows', () => {
  it('a password of the wrong type (a number from env or YAML parsing) is named in the error, its value not shown', () => {
    for (const key of ['password', 'password1', 'passwordSha1']) {
      const error = thrown(() => createMysql({ host: '127.0.0.1', user: 'root', [key]: 98765432 }));
      expect(error).toBeInstanceOf(TypeError);
      expect(String(error)).toContain(`option '${key}' must be a string, got a number`);
      expect(String(error)).not.toContain('98765432');
    }
  });

  it("a URI's password in the query string is kept as a string, even all digits, and never shown", () => {
    const { connection, secrets } = resolveMysqlOptions('mysql://root@127.0.0.1/test?password1=98765432&password=12345678');
    expect(connection).toMatchObject({ password: '12345678', password1: '98765432' });
    expect(secrets).toEqual(['12345678', '98765432']);
    // The password before the @ wins over one in the query string.
    expect(resolveMysqlOptions('mysql://root:abc@127.0.0.1/test?password=xyz').connection.password).toBe('abc');
    const db = createMysql('mysql://root@127.0.0.1/test?password1=98765432&password=12345678');
    const text = `${utilInspect(db, { depth: 5 })} ${JSON.stringify(inspect())}`;
    expect(text).not.toContain('98765432');
    expect(text).not.toContain('12345678');
    return db.close();
  });

  it('special characters in a URI password never show in errors or inspect()', async () => {
    const port = await closedPort();
    const password = 'p@ss:w/rd#?%&=';
    const db = createMysql(`mysql://root:${encodeURIComponent(password)}@127.0.0.1:${port}/test`);
    const error = await rejectionOf(db.query('SELECT 1'));
    const text = `${String(error)} ${utilInspect(error, { depth: 8 })} ${JSON.stringify(inspect())} ${utilInspect(db, { depth: 5 })}`;
    expect(text).not.toContain(password);
    expect(text).not.toContain(encodeURIComponent(password));
    await db.close();
  });
});
