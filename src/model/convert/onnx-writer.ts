/**
 * A minimal, dependency-free ONNX (protobuf) writer: enough of onnx.proto3 to build inference
 * graphs from code (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
 * ValueInfoProto). Field numbers follow onnx.proto3. Runs in browsers and Node alike.
 */

/** TensorProto.DataType values used here. */
export const DataType = Object.freeze({ FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10 });
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType values. */
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/**
 * Tensor bytes produced on demand: `fill` writes exactly `byteLength` bytes into `dst` when the
 * final buffer is assembled. Converters use it to transpose or quantize one weight at a time
 * straight into the model bytes, so a model is never held twice beside its source.
 */
export interface LazyBytes {
  byteLength: number;
  fill(dst: Uint8Array): void;
}

type Part = Uint8Array | LazyBytes;

/** A growable protobuf byte buffer; nested messages and large payloads are kept by reference until {@link finish}. */
class Writer {
  /** Small writes collect here; large byte arrays go to `parts` as they are, uncopied. */
  private chunks: number[] = [];
  private readonly parts: Part[] = [];
  private size = 0;

  private flush(): void {
    if (this.chunks.length) {
      this.parts.push(Uint8Array.from(this.chunks));
      this.size += this.chunks.length;
    }
    this.chunks = [];
  }

  /** Bytes written so far. */
  get length(): number {
    return this.size + this.chunks.length;
  }

  varint(value: number | bigint): this {
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.chunks.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.chunks.push(Number(v));
    return this;
  }
  tag(field: number, wire: 0 | 1 | 2 | 5): this {
    return this.varint((field << 3) | wire);
  }
  int(field: number, value: number | bigint): this {
    return this.tag(field, 0).varint(value);
  }
  bytes(field: number, data: Uint8Array | LazyBytes): this {
    this.tag(field, 2).varint(data.byteLength);
    if (data instanceof Uint8Array && data.length < 64) for (let i = 0; i < data.length; i++) this.chunks.push(data[i]!);
    else {
      this.flush();
      this.parts.push(data);
      this.size += data.byteLength;
    }
    return this;
  }
  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }
  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    inner.flush();
    this.tag(field, 2).varint(inner.size);
    this.flush();
    for (const p of inner.parts) this.parts.push(p);
    this.size += inner.size;
    return this;
  }
  float(field: number, value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.tag(field, 5);
    for (const x of b) this.chunks.push(x);
    return this;
  }
  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.parts) {
      if (p instanceof Uint8Array) out.set(p, at);
      else p.fill(out.subarray(at, at + p.byteLength));
      at += p.byteLength;
    }
    return out;
  }
}

/** A dimension: a fixed size or a symbolic name such as 'batch_size'. */
export type Dim = number | string;

/** A constant tensor (initializer or attribute value). `data` holds raw little-endian bytes. */
export interface TensorSpec {
  name: string;
  dataType: DataTypeCode;
  dims: number[];
  data: Uint8Array | LazyBytes;
}

/** An attribute value: numbers become INT (integers) unless listed in `floats`. */
export type AttributeValue = { i: number } | { f: number } | { s: string } | { ints: number[] } | { floats: number[] } | { t: TensorSpec };

/** One node of the graph. */
export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attributes?: Record<string, AttributeValue>;
}

/** A graph input or output. */
export interface ValueSpec {
  name: string;
  elemType: DataTypeCode;
  shape: Dim[];
}

/** Raw bytes of a typed array (little-endian on every platform browsers and Node run on). */
export function bytesOf(array: Float32Array | Int32Array | Int8Array | Uint8Array | Uint16Array | BigInt64Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

function writeTensor(w: Writer, t: TensorSpec): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.data);
}

function writeValueInfo(w: Writer, v: ValueSpec): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.elemType);
      tensor.message(2, (shape) => {
        for (const d of v.shape) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

function writeAttribute(w: Writer, name: string, value: AttributeValue): void {
  w.string(1, name);
  if ('i' in value) w.int(3, value.i).int(20, AttrType.INT);
  else if ('f' in value) w.float(2, value.f).int(20, AttrType.FLOAT);
  else if ('s' in value) w.string(4, value.s).int(20, AttrType.STRING);
  else if ('t' in value) w.message(5, (t) => writeTensor(t, value.t)).int(20, AttrType.TENSOR);
  else if ('ints' in value) {
    for (const i of value.ints) w.int(8, i);
    w.int(20, AttrType.INTS);
  } else {
    for (const f of value.floats) w.float(7, f);
    w.int(20, AttrType.FLOATS);
  }
}

/** Collects a graph's parts; {@link encodeModel} turns it into ONNX bytes. */
export class GraphBuilder {
  readonly inputs: ValueSpec[] = [];
  readonly outputs: ValueSpec[] = [];
  readonly initializers: TensorSpec[] = [];
  readonly nodes: NodeSpec[] = [];
  private counter = 0;

  constructor(readonly name: string) {}

  input(name: string, elemType: DataTypeCode, shape: Dim[]): string {
    this.inputs.push({ name, elemType, shape });
    return name;
  }
  output(name: string, elemType: DataTypeCode, shape: Dim[]): string {
    this.outputs.push({ name, elemType, shape });
    return name;
  }
  initializer(name: string, dataType: DataTypeCode, dims: number[], data: Uint8Array | LazyBytes): string {
    this.initializers.push({ name, dataType, dims, data });
    return name;
  }
  /** Adds a node with one output (named `output`, or a fresh name) and returns that name. */
  node(opType: string, inputs: string[], attributes?: Record<string, AttributeValue>, output?: string): string {
    const out = output ?? `${opType.toLowerCase()}_${this.counter++}`;
    const spec: NodeSpec = { opType, inputs, outputs: [out], name: `${opType}_${this.nodes.length}` };
    if (attributes) spec.attributes = attributes;
    this.nodes.push(spec);
    return out;
  }
  /**
   * Adds a node with `count` outputs (fresh names), optionally in another operator domain such as
   * 'com.microsoft', and returns the output names.
   */
  nodeN(opType: string, inputs: string[], count: number, attributes?: Record<string, AttributeValue>, domain?: string): string[] {
    const base = `${opType.toLowerCase()}_${this.counter++}`;
    const outputs = Array.from({ length: count }, (_, i) => `${base}_${i}`);
    const spec: NodeSpec = { opType, inputs, outputs, name: `${opType}_${this.nodes.length}` };
    if (attributes) spec.attributes = attributes;
    if (domain) spec.domain = domain;
    this.nodes.push(spec);
    return outputs;
  }
  /** An int64 constant initializer (for shape and axes inputs). */
  int64s(name: string, values: number[]): string {
    return this.initializer(name, DataType.INT64, [values.length], bytesOf(BigInt64Array.from(values.map(BigInt))));
  }
  /** A float scalar initializer. */
  scalar(name: string, value: number): string {
    return this.initializer(name, DataType.FLOAT, [], bytesOf(Float32Array.of(value)));
  }
}

/** Serialises a graph as an ONNX ModelProto (IR version 8). */
export function encodeModel(graph: GraphBuilder, opsets: Record<string, number> = { '': 17 }, producer = 'colbert-web'): Uint8Array {
  const w = new Writer();
  w.int(1, 8);
  w.string(2, producer);
  w.message(7, (g) => {
    for (const n of graph.nodes) {
      g.message(1, (node) => {
        for (const i of n.inputs) node.string(1, i);
        for (const o of n.outputs) node.string(2, o);
        if (n.name) node.string(3, n.name);
        node.string(4, n.opType);
        for (const [name, value] of Object.entries(n.attributes ?? {})) node.message(5, (a) => writeAttribute(a, name, value));
        if (n.domain) node.string(7, n.domain);
      });
    }
    g.string(2, graph.name);
    for (const t of graph.initializers) g.message(5, (tw) => writeTensor(tw, t));
    for (const v of graph.inputs) g.message(11, (vw) => writeValueInfo(vw, v));
    for (const v of graph.outputs) g.message(12, (vw) => writeValueInfo(vw, v));
  });
  for (const [domain, version] of Object.entries(opsets)) {
    w.message(8, (o) => {
      if (domain) o.string(1, domain);
      o.int(2, version);
    });
  }
  return w.finish();
}
