// For tests: a fake navigator.usb with one Sony RC-S380 whose device side (Port-100, the Type B card, ISO-DEP)
// is the simulated reader compiled to WebAssembly (kyotaku-virtual-card.js) holding the virtual card.
// transferIn stays pending until the device has something to say, as a real bulk-in transfer does.

export function createFakeRcs380(sim) {
  let unplugged = false;
  const waiting = [];
  const disconnected = () => new DOMExceptionLike('NetworkError', 'The device was disconnected.');

  const readOne = (max) => {
    const p = sim._malloc(4096);
    try {
      const n = sim._vc_read(p, 4096);
      if (n === -2) throw disconnected();
      if (n < 0) return null;
      if (n > max) throw new DOMExceptionLike('DataError', 'babble');
      return sim.HEAPU8.slice(p, p + n);
    } finally {
      sim._free(p);
    }
  };
  const wake = () => {
    while (waiting.length) {
      const w = waiting[0];
      let data;
      try {
        data = readOne(w.max);
      } catch (e) {
        waiting.shift().reject(e);
        continue;
      }
      if (!data) return;
      waiting.shift().resolve({ status: 'ok', data: new DataView(data.buffer) });
    }
  };

  const device = {
    vendorId: 0x054c,
    productId: 0x06c1,
    productName: 'RC-S380/S (simulated)',
    opened: false,
    configuration: null,
    async open() { if (unplugged) throw disconnected(); this.opened = true; },
    async close() { this.opened = false; },
    async selectConfiguration(n) {
      if (n !== 1) throw new DOMExceptionLike('NotFoundError', 'no such configuration');
      this.configuration = {
        configurationValue: 1,
        interfaces: [{ interfaceNumber: 0, alternate: { interfaceClass: 0xff, endpoints: [
          { endpointNumber: 1, direction: 'in', type: 'bulk', packetSize: 64 },
          { endpointNumber: 2, direction: 'out', type: 'bulk', packetSize: 64 },
        ] } }],
      };
    },
    async claimInterface(n) { if (n !== 0 || !this.configuration) throw new DOMExceptionLike('NotFoundError', 'no such interface'); },
    async releaseInterface() {},
    async transferOut(ep, data) {
      if (unplugged) throw disconnected();
      if (ep !== 2) throw new DOMExceptionLike('NotFoundError', 'endpoint');
      const bytes = new Uint8Array(data.buffer ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : data);
      const p = sim._malloc(bytes.length || 1);
      sim.HEAPU8.set(bytes, p);
      const r = sim._vc_write(p, bytes.length);
      sim._free(p);
      if (r === -2) throw disconnected();
      queueMicrotask(wake);
      return { status: 'ok', bytesWritten: bytes.length };
    },
    transferIn(ep, max) {
      if (unplugged) return Promise.reject(disconnected());
      if (ep !== 1) return Promise.reject(new DOMExceptionLike('NotFoundError', 'endpoint'));
      return new Promise((resolve, reject) => { waiting.push({ max, resolve, reject }); wake(); });
    },
  };

  return {
    device,
    usb: {
      async getDevices() { return device.granted ? [device] : []; },
      async requestDevice({ filters }) {
        if (unplugged || !filters.some((f) => f.vendorId === device.vendorId && (f.productId === undefined || f.productId === device.productId)))
          throw new DOMExceptionLike('NotFoundError', 'No device selected.');
        device.granted = true;
        return device;
      },
    },
    unplug() {
      unplugged = true;
      sim._vc_unplug();
      while (waiting.length) waiting.shift().reject(disconnected());
    },
  };
}

class DOMExceptionLike extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}
