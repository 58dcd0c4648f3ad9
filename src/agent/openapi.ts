/** Builds the OpenAPI 3.1 document from the routes' own validation schemas. */
import { CATALOGUE } from '../model/errors.js';
import { errorSchema } from './schemas.js';

export interface RouteDoc {
  readonly method: string;
  readonly url: string;
  readonly summary: string;
  readonly schema: { body?: unknown; querystring?: unknown; params?: unknown };
}

export function openApiDocument(routes: readonly RouteDoc[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:(\w+)/g, '{$1}');
    const parameters: unknown[] = [];
    const add = (schema: unknown, where: 'path' | 'query'): void => {
      const s = schema as { properties?: Record<string, unknown>; required?: string[] } | undefined;
      for (const [name, prop] of Object.entries(s?.properties ?? {})) {
        parameters.push({
          name,
          in: where,
          required: where === 'path' || (s?.required ?? []).includes(name),
          schema: prop,
        });
      }
    };
    add(r.schema.params, 'path');
    add(r.schema.querystring, 'query');
    (paths[path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      ...(parameters.length ? { parameters } : {}),
      ...(r.schema.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: r.schema.body } } } }
        : {}),
      responses: {
        '200': { description: 'OK' },
        default: {
          description: 'An error from the catalogue',
          content: { 'application/json': { schema: errorSchema } },
        },
      },
      security: [{ bearer: [] }],
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'rrm agent', version, description: 'Resource reservations for package installs.' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: errorSchema },
    },
    'x-error-codes': Object.fromEntries(
      Object.entries(CATALOGUE).map(([code, s]) => [code, { status: s.http, summary: s.summary }]),
    ),
    paths,
  };
}
