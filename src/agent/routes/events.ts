/** /v1/events: the ledger's events as JSON, or as a server-sent event stream (Accept: text/event-stream). */
import type { FastifyPluginAsync } from 'fastify';
import type { AgentDeps } from '../app.js';
import { eventsQuery, queryInt } from '../schemas.js';

export const eventRoutes: FastifyPluginAsync<{ deps: AgentDeps }> = async (app, { deps }) => {
  const { ledger } = deps;
  app.get<{ Querystring: { afterSeq?: string; reservation?: string; limit?: string } }>(
    '/v1/events',
    {
      schema: { querystring: eventsQuery },
      config: {
        longRunning: true,
        summary: 'Events after a cursor; text/event-stream streams new ones as they commit.',
      },
    },
    async (req, reply) => {
      const filter = {
        afterSeq: queryInt(req.query.afterSeq),
        reservation: req.query.reservation,
        limit: queryInt(req.query.limit) ?? 1000,
      };
      if (!String(req.headers.accept ?? '').includes('text/event-stream'))
        return { events: await ledger.events(filter) };
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      let cursor = filter.afterSeq;
      if (cursor === undefined) cursor = (await ledger.events({ limit: 1 })).at(-1)?.seq ?? 0;
      let busy = false;
      let again = false;
      const flush = async (): Promise<void> => {
        if (busy) {
          again = true;
          return;
        }
        busy = true;
        try {
          do {
            again = false;
            const events = await ledger.events({ ...filter, afterSeq: cursor, limit: 10_000 });
            for (const e of events)
              res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
            if (events.length) cursor = events[events.length - 1]!.seq;
            else res.write(`event: change\ndata: {}\n\n`);
          } while (again);
        } finally {
          busy = false;
        }
      };
      res.write(`event: ready\ndata: {"cursor":${cursor}}\n\n`);
      const unwatch = ledger.watch(() => void flush().catch(() => undefined));
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
      const close = (): void => {
        unwatch();
        clearInterval(heartbeat);
        deps.shutdown.removeEventListener('abort', end);
      };
      const end = (): void => {
        close();
        res.end();
      };
      deps.shutdown.addEventListener('abort', end, { once: true });
      req.raw.on('close', close);
    },
  );
};
